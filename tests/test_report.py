"""tools/report.py: the tiny run end to end (host backend, any machine) and the rendering of
speedups from synthetic results."""
import json
import os
import re
import sys
import types

import numpy as np
import pytest
from absl import flags

import report
import report_render

FLAGS = flags.FLAGS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    os.environ.setdefault("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))
    rc = report.run(["tools/report.py", "--tiny", "--backend=host", f"--out_dir={out}", "--nn_models=alexnet,resnet18"])
    with open(out / "report.md") as f:
        text = f.read()
    with open(out / "results.json") as f:
        data = json.load(f)
    return rc, out, text, data


def test_tiny_run_succeeds(tiny_report):
    rc, _, _, data = tiny_report
    assert rc == 0
    assert not [r for r in data["results"] if r["status"] == "WRONG"]


def test_markdown_has_header_and_sections(tiny_report):
    _, _, text, data = tiny_report
    assert text.startswith("# APNN benchmark report")
    for needle in ("- GPU: ", "- Date: ", "- Command: `python3 tools/report.py --tiny --backend=host --out_dir=",
                   "## Verification", "## Summary", "## GEMM: M=16, N=K=128..256", "## CONV: 8x8, 3x3, pad 1",
                   "## NN: AlexNet, ResNet-18 at 32x32, width x0.125, batch 1, 2",
                   "![GEMM](gemm_tops.png)", "![CONV](conv_tops.png)", "![NN](nn_latency.png)",
                   "vs CUTLASS INT1-AND", "vs cuBLAS FP16", "vs cuDNN FP16", "vs CUTLASS FP32"):
        assert needle in text, needle
    assert re.search(r"- Date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    n_ok = sum(1 for r in data["results"] if r["status"] == "ok" and r["family"] == "apnn")
    # CUTLASS / TCBNN results count too where the baselines library is there (on a GPU machine).
    verified = re.search(r"\*\*(\d+) results verified, 0 wrong\.\*\*", text)
    assert verified and int(verified.group(1)) >= n_ok
    assert n_ok >= 6 * 2 + 4 * 2 * 2  # every GEMM and CONV precision x shape on the host backend


def test_gemm_and_conv_numbers(tiny_report):
    _, _, text, data = tiny_report
    rows = data["results"]
    for p in ("w1a1", "w1a2", "w1a3", "w1a4", "w2a2", "w4a4"):
        m = re.search(rf"^\| 16x128x128 \| {p} \| ([0-9.]+) \| ([0-9.e+-]+) \|.* full \|$", text, re.M)
        assert m, p
        us, tops = float(m.group(1)), float(m.group(2))
        assert us > 0 and tops == pytest.approx(2 * 16 * 128 * 128 / (us * 1e-6) / 1e12, rel=0.01)
    for p in ("w1a2", "w1a3", "w1a4", "w2a2"):
        for batch in (1, 2):
            assert re.search(rf"^\| {batch} \| 8x8 C=O=128 \| {p} \| [0-9.]+ \| [0-9.]+ \| [0-9.e+-]+ \|", text, re.M)
    for r in rows:
        if r["section"] in ("gemm", "conv") and r["family"] == "apnn":
            assert r["status"] == "ok" and r["verified"], r
            assert r["tops"] == pytest.approx(r["ops"] / (r["us"] * 1e-6) / 1e12)
    # The baselines are rows too: measured where a GPU / PyTorch is there, else "n/a" with the reason.
    base = [r for r in rows if r["family"] == "baseline" and r["section"] == "gemm"]
    assert {r["impl"] for r in base} == set(report.GEMM_BASELINES)
    assert all(r["status"] == "ok" or r["note"] for r in base)


def test_nn_rows(tiny_report):
    _, _, _, data = tiny_report
    nn = [r for r in data["results"] if r["section"] == "nn"]
    assert {(r["shape"], r["batch"]) for r in nn} == {(m, b) for m in ("AlexNet", "ResNet-18") for b in (1, 2)}
    try:
        import apnn.models  # noqa: F401
        have_networks = True
    except ImportError:
        have_networks = False
    for r in nn:
        if r["impl"] == "APNN w1a2":
            if have_networks:  # on the host backend too: checked against the oracle, timed
                assert r["status"] == "ok" and r["verified"] == "oracle, image 0 (exact)", r
            else:
                assert r["status"] == "n/a" and "not available" in r["note"], r
        if r["status"] == "ok":
            assert r["verified"] and r["us"] > 0 and r["tops"] > 0


def test_pngs_are_images(tiny_report):
    _, out, _, _ = tiny_report
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    for name in ("gemm_tops.png", "conv_tops.png", "nn_latency.png"):
        path = out / name
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, name
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 400, (name, img.shape)
        assert img.std() > 0.01, name  # not blank


def _row(section, shape, impl, family, us, batch=0, status="ok", note=""):
    return dict(section=section, shape=shape, size=1024, batch=batch, impl=impl, family=family, status=status,
                note=note, us=us, verified="full" if status == "ok" else None, ops=2.0 * 64 * 1024 * 1024,
                tops=2.0 * 64 * 1024 * 1024 / (us * 1e-6) / 1e12 if us else None)


def test_render_speedups_from_synthetic_results(tmp_path):
    results = [
        _row("gemm", "64x1024x1024", "APNN w1a2", "apnn", 5.0),
        _row("gemm", "64x1024x1024", "APNN w2a2", "apnn", None, status="WRONG", note="differs"),
        _row("gemm", "64x1024x1024", "CUTLASS INT1-AND", "baseline", 10.0),
        _row("gemm", "64x1024x1024", "cuBLAS FP16", "baseline", 4.0),
        _row("gemm", "64x1024x1024", "cuBLAS FP8", "baseline", None, status="n/a", note="no FP8 here"),
        _row("nn", "AlexNet", "APNN w1a2", "apnn", 360.0, batch=8),
        _row("nn", "AlexNet", "CUTLASS FP16", "baseline", 3790.0, batch=8),
    ]
    names = {"gemm": ["CUTLASS INT1-AND", "cuBLAS FP16", "cuBLAS FP8"], "nn": ["CUTLASS FP16"]}
    meta = dict(gpu="Test GPU", backend="cuda", device="Test GPU", date="2026-01-01 00:00:00 UTC",
                command="bazel run //tools:report")
    text = report_render.markdown(meta, results, ["gemm", "nn"], names, {"gemm": "gemm_tops.png"}, "checked")
    assert "| 64x1024x1024 | w1a2 | 5.00 | 26.8 | 2.00x | 0.80x | – | full |" in text
    assert "**WRONG**: differs" in text
    assert "| NN | AlexNet | 8 | w1a2 | 0.360 ms |" in text and "CUTLASS FP16 10.5x" in text
    assert "cuBLAS FP8: no FP8 here" in text
    written = report_render.plots(str(tmp_path), results, ["gemm", "nn"])
    assert set(written) == {"gemm", "nn"}
    for name in written.values():
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == PNG_MAGIC


def test_bench_modules_import_without_defining_flags():
    import bench_baseline_conv  # noqa: F401
    import bench_baseline_gemm  # noqa: F401
    import bench_baseline_nn  # noqa: F401
    import bench_conv  # noqa: F401
    import bench_gemm  # noqa: F401
    for name in ("w_bit", "bits", "batch", "model", "compare"):
        assert name not in FLAGS, name


class _FakeNetwork:
    """Stands in for an apnn.Network from apnn.models.build (the calls the report makes)."""
    wrong = False

    def __call__(self, x):
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
        return x.sum(axis=(1, 2), keepdims=True).astype(np.float32) + (1.0 if self.wrong else 0.0)

    def reference(self, x):
        return x.sum(axis=(1, 2), keepdims=True).astype(np.float32)

    def benchmark(self, batch, iters=50, warmup=5):
        return 0.123  # ms


@pytest.mark.parametrize("wrong", [False, True])
def test_nn_apnn_rows_through_apnn_models(tmp_path, monkeypatch, wrong):
    fake = types.ModuleType("apnn.models")
    built = []

    def build(name, *, w_bit, x_bit, input_shape, context, seed, width=1.0):
        assert (w_bit, x_bit, input_shape, width) == (1, 2, (32, 32, 3), 0.125) and context is not None
        built.append(name)
        net = _FakeNetwork()
        net.wrong = wrong
        return net

    fake.build = build
    monkeypatch.setitem(sys.modules, "apnn.models", fake)
    rc = report.run(["report", "--tiny", "--backend=host", f"--out_dir={tmp_path}", "--sections=nn",
                     "--nn_models=resnet18", "--nn_batch=2,3", "--notorch"])
    with open(tmp_path / "results.json") as f:
        rows = [r for r in json.load(f)["results"] if r["impl"] == "APNN w1a2"]
    assert built == ["resnet18"]  # one network per model, planned for each batch
    assert [r["batch"] for r in rows] == [2, 3]
    if wrong:
        assert rc == 1 and all(r["status"] == "WRONG" for r in rows)
    else:
        assert rc == 0 and all(r["status"] == "ok" and r["us"] == pytest.approx(123.0) for r in rows)
        assert all(r["verified"] == "oracle, image 0 (exact)" for r in rows)
