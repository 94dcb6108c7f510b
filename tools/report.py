"""One-process report: APNN against the CUTLASS / TCBNN baselines and cuBLAS / cuDNN on the
seed paper's GEMM, CONV and NN tables, as Markdown (report.md), plots (PNG) and JSON.

    bazel run //tools:report -- --out_dir=/tmp/report                  # the seed tables (GPU)
    bazel run //tools:report -- --tiny --out_dir=/tmp/report           # tiny shapes, any machine
    python3 tools/report.py --out_dir=$OUT/report                      # GPU machine, no Bazel
                                                                       # (tools/device/report.sh)
Tables (seed = the shapes of APNN-TC's published tables):
  GEMM  M=64, N=K=128..1024 step 128. APNN w1a1 w1a2 w1a3 w1a4 w2a2 w4a4 (activations unsigned,
        weights binary +-1 at 1 bit, else signed); CUTLASS INT1 AND / XOR and INT4; cuBLAS
        FP16 / INT8 / FP8 (PyTorch).
  CONV  16x16 map, 3x3, pad 1, C=O=128..1024 step 128, batch 1 and 8. APNN w1a2 w1a3 w1a4 w2a2
        (raw int32 output; the fused-epilogue time is shown beside it); CUTLASS INT1 AND / XOR
        and INT4 implicit GEMM; cuDNN FP16 and cuBLAS INT8 on the im2col GEMM (PyTorch).
  NN    AlexNet, VGG-variant, ResNet-18 at 224x224, batch 8 and 256. APNN w1a2 (when
        python/apnn/network.py and apnn.models exist, else "not available"); CUTLASS FP32 /
        FP16 / INT8 and the binarized (TCBNN-style) network; PyTorch cuDNN FP16 of the same
        architecture.
Every APNN and CUTLASS / TCBNN result is checked against its numpy oracle before it is timed,
with the benchmarks' own functions (bench_gemm.run_one, bench_conv.run_shape,
bench_baseline_{gemm,conv}.run_one, bench_baseline_nn.check_output); a wrong result is
reported as WRONG and makes the exit status 1. cuBLAS / cuDNN are timed, not checked.
Each section is written as soon as it is done (report.md and results.json are rewritten), so
a run cut short still leaves the finished sections.

APNN networks: apnn.models.build(name, w_bit=1, x_bit=2, ...) (python/apnn/network.py, models.py),
8-bit image codes in, float logits out; checked exactly against Network.reference on image 0 (as
tools/bench_nn.py --verify does) and timed with Network.benchmark. Without apnn.models (an older
tree) the APNN rows say "not available" and why.
"""
import datetime
import importlib
import json
import os
import shlex
import sys
import time
import traceback
import zlib

import numpy as np
from absl import app, flags

import report_render

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "report", "Folder for report.md, results.json and the PNGs (created; relative paths "
                    "are relative to the directory `bazel run` was started from).")
flags.DEFINE_enum("shapes", "seed", ["seed", "tiny"], "seed: the paper's tables (a GPU run); tiny: small shapes that "
                  "run on the host backend in seconds (CI).")
flags.DEFINE_bool("tiny", False, "Same as --shapes=tiny.")
flags.DEFINE_list("sections", ["gemm", "conv", "nn"], "Which tables: gemm, conv, nn.")
flags.DEFINE_enum("backend", "auto", ["auto", "cuda", "host"], "libapnn backend.")
flags.DEFINE_list("gemm_precisions", ["w1a1", "w1a2", "w1a3", "w1a4", "w2a2", "w4a4"], "APNN GEMM precisions.")
flags.DEFINE_list("conv_precisions", ["w1a2", "w1a3", "w1a4", "w2a2"], "APNN CONV precisions.")
flags.DEFINE_list("conv_batch", None, "CONV batch sizes (default: 1,8; tiny: 1,2).")
flags.DEFINE_list("nn_models", ["alexnet", "vgg_variant", "resnet18"], "Networks.")
flags.DEFINE_list("nn_batch", None, "NN batch sizes (default: 8,256; tiny: 1,2).")
flags.DEFINE_float("nn_width", None, "Scale every channel count of the networks but the last (all implementations "
                   "alike; default 1, tiny: 0.125).")
flags.DEFINE_list("nn_precisions", ["fp32", "fp16", "int8", "bnn"], "CUTLASS / TCBNN network baselines.")
flags.DEFINE_integer("iters", 50, "Timed calls per GEMM / CONV measurement.")
flags.DEFINE_integer("warmup", 5, "Untimed calls before timing (GEMM / CONV).")
flags.DEFINE_integer("nn_iters", 5, "Timed forward passes per network.")
flags.DEFINE_integer("nn_warmup", 2, "Untimed forward passes per network.")
flags.DEFINE_bool("nn_verify", True, "Check every network against the numpy oracle (random weights, first image of "
                  "the batch; images are independent). Off: only a finiteness check, said so in the report.")
flags.DEFINE_bool("torch", True, "Time cuBLAS / cuDNN through PyTorch when it is importable with a GPU.")
flags.DEFINE_integer("seed", 0, "Random seed.")

SEED_GEMM = [(64, n, n) for n in range(128, 1025, 128)]
TINY_GEMM = [(16, 128, 128), (16, 256, 256)]
SEED_CONV = (16, [c for c in range(128, 1025, 128)])  # (H = W, C = O values); 3x3, pad 1
TINY_CONV = (8, [64, 128])
SEED_INPUT = (224, 224, 3)
TINY_INPUT = (32, 32, 3)

GEMM_BASELINES = ["CUTLASS INT1-AND", "CUTLASS INT1-XOR", "CUTLASS INT4", "cuBLAS FP16", "cuBLAS INT8", "cuBLAS FP8"]
CONV_BASELINES = ["CUTLASS INT1-AND", "CUTLASS INT1-XOR", "CUTLASS INT4", "cuDNN FP16", "cuBLAS INT8 im2col-GEMM"]
CUTLASS_KINDS = {"CUTLASS INT1-AND": "int1-and", "CUTLASS INT1-XOR": "int1-xor", "CUTLASS INT4": "int4"}
NN_NAMES = {"fp32": "CUTLASS FP32", "fp16": "CUTLASS FP16", "int8": "CUTLASS INT8", "bnn": "TCBNN BNN (w1a1)"}
MODEL_TITLES = {"alexnet": "AlexNet", "vgg_variant": "VGG-variant", "resnet18": "ResNet-18"}


def parse_precision(p):
    p = p.strip().lower()
    if not (p.startswith("w") and "a" in p):
        raise app.UsageError(f"precision must look like w1a2, got {p!r}")
    w, a = p[1:].split("a")
    return int(w), int(a)


def rng_for(*key):
    return np.random.default_rng([FLAGS.seed, zlib.crc32(repr(key).encode())])


def result(section, shape, impl, family, *, size=0, batch=0, ops=None, us=None, status="ok", note="", verified=None,
           **extra):
    r = dict(section=section, shape=shape, size=size, batch=batch, impl=impl, family=family, status=status, note=note,
             us=us, verified=verified, ops=ops)
    r["tops"] = ops / (us * 1e-6) / 1e12 if (ops and us and status == "ok") else None
    r.update(extra)
    return r


def guarded(fn, base):
    """Runs fn() -> dict of fields; a wrong result (SystemExit from a verify function) becomes WRONG, any other
    failure n/a with its reason."""
    try:
        return {**base, **fn()}
    except SystemExit as e:
        return {**base, "status": "WRONG", "note": str(e), "us": None, "tops": None}
    except Exception as e:  # noqa: BLE001 - one failed measurement must not lose the report
        msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:200]
        if os.environ.get("REPORT_DEBUG"):
            traceback.print_exc()
        return {**base, "status": "n/a", "note": msg, "us": None, "tops": None}


def finish(r):
    if r["status"] == "ok" and r.get("ops") and r.get("us"):
        r["tops"] = r["ops"] / (r["us"] * 1e-6) / 1e12
    return r


def say(r):
    if r["status"] == "ok":
        t = f"{r['us'] / 1000:.3f} ms" if r["section"] == "nn" else f"{r['us']:.2f} us"
        tops = f"{r['tops']:.3f} TOPS" if r.get("tops") is not None else ""
        print(f"  {r['section']:4s} {r['shape']:>22s} b{r.get('batch', 0):<3d} {r['impl']:26s} {t:>12s} {tops:>14s}"
              f"  verified: {r.get('verified')}", flush=True)
    else:
        print(f"  {r['section']:4s} {r['shape']:>22s} b{r.get('batch', 0):<3d} {r['impl']:26s} {r['status']}: "
              f"{r.get('note', '')}", flush=True)


class Env:
    """What is available in this process: the APNN context, the baselines library, PyTorch."""

    def __init__(self):
        import apnn  # noqa: PLC0415
        self.apnn = apnn
        self.ctx = apnn.Context(FLAGS.backend)
        self.gpu = self.ctx.device_name if self.ctx.backend == "cuda" else None
        self.ab, self.ab_reason = None, ""
        self.xor_ok, self.xor_reason = True, ""
        try:
            import apnn_baselines  # noqa: PLC0415
            if apnn_baselines.cuda_device_count() > 0:
                self.ab = apnn_baselines
                self.gpu = self.gpu or apnn_baselines.device_name()
                supported = getattr(apnn_baselines, "xor_popc_supported", lambda: True)
                self.xor_ok = supported()
                if not self.xor_ok:
                    major, minor = apnn_baselines.compute_capability()
                    self.xor_reason = (f"CUTLASS b1 XOR-popc is unsupported on sm_{major}{minor} (no native BMMA.XOR; "
                                       "the library refuses it): the BNN network runs on the AND-popc GEMM there")
            else:
                self.ab_reason = "no CUDA GPU here (the CUTLASS / TCBNN baselines need one)"
        except Exception as e:  # noqa: BLE001
            self.ab_reason = f"apnn_baselines not loadable ({type(e).__name__}: {e})"
        self.torch, self.torch_reason = None, ""
        if not FLAGS.torch:
            self.torch_reason = "--notorch"
        else:
            import torch_baselines  # noqa: PLC0415
            self.torch = torch_baselines.torch_cuda()
            if self.torch is None:
                self.torch_reason = "PyTorch with a GPU is not importable here"
            else:
                self.gpu = self.gpu or self.torch.cuda.get_device_name()

    def versions(self):
        v = [f"apnn {self.apnn.version()}"]
        if self.ab:
            v.append(f"apnn_baselines {self.ab.version()}")
        if self.torch:
            v.append(f"torch {self.torch.__version__} (CUDA {self.torch.version.cuda}, cuDNN "
                     f"{self.torch.backends.cudnn.version()})")
        v.append(f"numpy {np.__version__}")
        return ", ".join(v)


# ---- GEMM --------------------------------------------------------------------------------------

def run_gemm(env, shapes):
    import bench_baseline_gemm  # noqa: PLC0415
    import bench_gemm  # noqa: PLC0415
    import torch_baselines  # noqa: PLC0415
    rows = []
    for (m, n, k) in shapes:
        shape = f"{m}x{n}x{k}"
        common = dict(size=n, ops=2.0 * m * n * k)
        for p in FLAGS.gemm_precisions:
            w_bit, x_bit = parse_precision(p)
            w_enc = "binary" if w_bit == 1 else "signed"
            base = result("gemm", shape, f"APNN w{w_bit}a{x_bit}", "apnn", **common)

            def apnn_one(w_bit=w_bit, x_bit=x_bit, w_enc=w_enc):
                row = bench_gemm.run_one(env.ctx, rng_for("gemm", m, n, k, w_bit, x_bit), m, n, k, x_bit, w_bit,
                                         "unsigned", w_enc, warmup=FLAGS.warmup, iters=FLAGS.iters)
                return dict(us=row["us"], verified=row["verified"], kernel=row["kernel"])
            rows.append(finish(guarded(apnn_one, base)))
            say(rows[-1])
        for name, kind in CUTLASS_KINDS.items():
            base = result("gemm", shape, name, "baseline", **common)
            if env.ab is None or (kind == "int1-xor" and not env.xor_ok):
                rows.append({**base, "status": "n/a", "note": env.ab_reason or env.xor_reason, "us": None})
            else:
                rows.append(finish(guarded(lambda kind=kind: _pick(bench_baseline_gemm.run_one(
                    kind, m, n, k, rng_for("cutlass-gemm", m, n, k, kind), warmup=FLAGS.warmup, iters=FLAGS.iters)),
                    base)))
            say(rows[-1])
        torch_times = {}
        torch_error = env.torch_reason
        if env.torch is not None:
            try:
                torch_times = torch_baselines.gemm_times(m, n, k)
            except Exception as e:  # noqa: BLE001
                torch_error = f"{type(e).__name__}: {e}"
        for key in ("fp16", "int8", "fp8"):
            base = result("gemm", shape, f"cuBLAS {key.upper()}", "baseline", **common)
            t = torch_times.get(key)
            if t:
                rows.append(finish({**base, "us": t, "verified": "timed only (vendor library)"}))
            else:
                rows.append({**base, "status": "n/a", "note": torch_error or f"cuBLAS refused {key} at this shape"})
            say(rows[-1])
    return rows


def _pick(row):
    return dict(us=row["us"], verified=row["verified"])


# ---- CONV --------------------------------------------------------------------------------------

def run_conv(env, hw, channels, batches):
    import bench_baseline_conv  # noqa: PLC0415
    import bench_conv  # noqa: PLC0415
    rows = []
    r = 3
    for batch in batches:
        for ch in channels:
            shape = f"{hw}x{hw} C=O={ch}"
            common = dict(size=ch, batch=batch, ops=2.0 * batch * hw * hw * ch * r * r * ch)
            for p in FLAGS.conv_precisions:
                w_bit, x_bit = parse_precision(p)
                base = result("conv", shape, f"APNN w{w_bit}a{x_bit}", "apnn", **common)

                def apnn_one(w_bit=w_bit, x_bit=x_bit):
                    row = bench_conv.run_shape(env.ctx, rng_for("conv", batch, hw, ch, w_bit, x_bit), shape, hw, hw,
                                               ch, ch, r, 1, r // 2, batch=batch, w_bit=w_bit, x_bit=x_bit,
                                               out_bit=2, warmup=FLAGS.warmup, iters=FLAGS.iters, separate=False)
                    if not row["exact"]:
                        raise SystemExit(f"WRONG RESULT for conv w{w_bit}a{x_bit} {shape} batch {batch}: apnn "
                                         "differs from the numpy oracle")
                    return dict(us=row["conv_us"], fused_us=row["fused_us"], kernel=row["kernel"],
                                verified="image 0, raw + fused epilogue")
                rows.append(finish(guarded(apnn_one, base)))
                say(rows[-1])
            for name, kind in CUTLASS_KINDS.items():
                base = result("conv", shape, name, "baseline", **common)
                if env.ab is None or (kind == "int1-xor" and not env.xor_ok):
                    rows.append({**base, "status": "n/a", "note": env.ab_reason or env.xor_reason})
                else:
                    rows.append(finish(guarded(lambda kind=kind: _pick(bench_baseline_conv.run_one(
                        kind, batch, hw, ch, r, rng_for("cutlass-conv", batch, hw, ch, kind), warmup=FLAGS.warmup,
                        iters=FLAGS.iters)), base)))
                say(rows[-1])
            times, error = {}, env.torch_reason
            if env.torch is not None:
                try:
                    times = bench_conv.torch_times(batch, hw, hw, ch, ch, r, 1, r // 2)
                except Exception as e:  # noqa: BLE001
                    error = f"{type(e).__name__}: {e}"
            for name, key in (("cuDNN FP16", "cudnn_fp16"), ("cuBLAS INT8 im2col-GEMM", "int8_gemm")):
                base = result("conv", shape, name, "baseline", **common)
                if times.get(key):
                    note = "timed only (vendor library)" + ("; GEMM only, im2col excluded: a lower bound"
                                                            if key == "int8_gemm" else "")
                    rows.append(finish({**base, "us": times[key], "verified": note}))
                else:
                    rows.append({**base, "status": "n/a", "note": error or f"cuBLAS refused {key} at this shape"})
                say(rows[-1])
    return rows


# ---- NN ----------------------------------------------------------------------------------------

def load_apnn_models():
    """(apnn.models, None) or (None, why not)."""
    try:
        amodels = importlib.import_module("apnn.models")
        amodels.build  # noqa: B018 - the entry point the report uses
    except Exception as e:  # noqa: BLE001
        return None, f"not available: apnn.models is not importable ({type(e).__name__}: {e})"
    return amodels, None


def scaled_layers(layers, width):
    """The layer table with every conv / fc width scaled but the last (apnn.models.build's `width` rule)."""
    if width == 1.0:
        return layers
    weighted = [i for i, layer in enumerate(layers) if layer["type"] in ("conv", "fc")]
    out = [dict(layer) for layer in layers]
    for i in weighted[:-1]:
        out[i]["out_channels"] = max(1, int(round(out[i]["out_channels"] * width)))
    return out


def run_apnn_net(env, amodels, name, batch, input_shape, cache, width=1.0):
    """APNN w1a2 network `name` (apnn.models.build, random weights, 8-bit image codes in, float logits out):
    checked against its numpy oracle (Network.reference, exact, image 0, as tools/bench_nn.py --verify), then
    timed with Network.benchmark. `cache` holds the model's network and oracle output across batch sizes."""
    if "net" not in cache:
        kw = dict(width=width) if width != 1.0 else {}
        cache["net"] = amodels.build(name, w_bit=1, x_bit=2, input_shape=tuple(input_shape), context=env.ctx,
                                     seed=FLAGS.seed, **kw)
    net = cache["net"]
    x = rng_for("apnn-nn-x", name, batch).integers(0, 256, (batch,) + tuple(input_shape)).astype(np.uint8)
    x[0] = rng_for("apnn-nn-x0", name).integers(0, 256, tuple(input_shape))  # image 0: the same at every batch
    logits = np.asarray(net(x))
    if not np.all(np.isfinite(logits)):
        raise SystemExit(f"WRONG RESULT for apnn {name} w1a2 batch {batch}: non-finite output")
    verified = "finite only (--nonn_verify)"
    if FLAGS.nn_verify:
        if "ref" not in cache:
            cache["ref"] = np.asarray(net.reference(x[:1]))
        if not np.array_equal(logits[:1], cache["ref"]):
            raise SystemExit(f"WRONG RESULT for apnn {name} w1a2 batch {batch}: differs from the numpy oracle")
        verified = "oracle, image 0 (exact)"
    ms = net.benchmark(batch, iters=FLAGS.nn_iters, warmup=FLAGS.nn_warmup)
    return dict(us=float(ms) * 1000.0, verified=verified)


def run_nn(env, models_, batches, input_shape, width=1.0):
    import bench_baseline_nn  # noqa: PLC0415
    import report_torch  # noqa: PLC0415
    from apnn_baselines import models as bmodels  # noqa: PLC0415
    from apnn_baselines import reference as bref  # noqa: PLC0415
    amodels, apnn_reason = load_apnn_models()
    rows = []
    oracle = {}  # (model, precision) -> (params, the oracle's output for image 0)
    weights = {}  # (model, "int8" or "float") -> random params
    for name in models_:
        oracle.clear()  # one model's weights at a time (VGG's are ~0.5 GB per kind)
        weights.clear()
        apnn_cache = {}
        layers = scaled_layers(bmodels.get(name), width)
        macs = bmodels.macs(layers, input_shape)
        title = MODEL_TITLES.get(name, name)
        for batch in batches:
            common = dict(batch=batch, ops=2.0 * macs * batch)
            x = rng_for("nn-x", name, batch).standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
            x[0] = rng_for("nn-x0", name).standard_normal(input_shape)  # image 0, checked: the same at every batch
            base = result("nn", title, "APNN w1a2", "apnn", **common)
            if amodels is None:
                rows.append({**base, "status": "n/a", "note": apnn_reason})
            else:
                rows.append(finish(guarded(
                    lambda: run_apnn_net(env, amodels, name, batch, input_shape, apnn_cache, width), base)))
            say(rows[-1])
            for precision in FLAGS.nn_precisions:
                base = result("nn", title, NN_NAMES.get(precision, precision), "baseline", **common)
                if env.ab is None:
                    rows.append({**base, "status": "n/a", "note": env.ab_reason})
                    say(rows[-1])
                    continue

                def one(precision=precision):
                    xin = x * 40.0 if precision == "int8" else x
                    net = env.ab.Net(layers, precision, batch=batch, input_shape=input_shape, seed=FLAGS.seed)
                    params = None
                    if FLAGS.nn_verify:
                        key = (name, precision)
                        if key not in oracle:
                            kind = "int8" if precision == "int8" else "float"  # fp32 / fp16 / bnn share weights
                            if (name, kind) not in weights:
                                weights[(name, kind)] = bench_baseline_nn.random_params(
                                    rng_for("nn-params", name, kind), layers, precision, input_shape)
                            p = weights[(name, kind)]
                            oracle[key] = (p, bref.net(precision, layers, xin[:1], p))
                        params, ref = oracle[key]
                        for i, (w, b) in params.items():
                            net.set_params(i, w, b)
                    out, us = net.run(xin, warmup=FLAGS.nn_warmup, iters=FLAGS.nn_iters)
                    del net
                    if not np.all(np.isfinite(out)):
                        raise SystemExit(f"WRONG RESULT for {name} {precision}: non-finite output")
                    if params is None:
                        return dict(us=us, verified="finite only (--nonn_verify)")
                    bench_baseline_nn.check_output(name, precision, out[:1], ref)
                    return dict(us=us, verified="oracle, image 0" + (
                        "; b1 AND-popc GEMM (no XOR on this GPU)" if precision == "bnn" and not env.xor_ok else ""))
                rows.append(finish(guarded(one, base)))
                say(rows[-1])
            base = result("nn", title, "cuDNN FP16", "baseline", **common)
            if env.torch is None:
                rows.append({**base, "status": "n/a", "note": env.torch_reason})
            else:
                rows.append(finish(guarded(lambda: dict(us=report_torch.net_time(
                    layers, batch, input_shape, warmup=FLAGS.nn_warmup, iters=FLAGS.nn_iters),
                    verified="timed only (vendor library), finite output"), base)))
            say(rows[-1])
    return rows


# ---- Report ------------------------------------------------------------------------------------

def command_line(argv):
    args = " ".join(shlex.quote(a) for a in argv[1:])
    if os.environ.get("BUILD_WORKSPACE_DIRECTORY"):
        return f"bazel run //tools:report -- {args}".strip()
    return f"python3 {shlex.quote(os.path.relpath(argv[0]) if argv[0] else 'tools/report.py')} {args}".strip()


def out_dir():
    d = FLAGS.out_dir
    if not os.path.isabs(d) and os.environ.get("BUILD_WORKING_DIRECTORY"):
        d = os.path.join(os.environ["BUILD_WORKING_DIRECTORY"], d)
    return os.path.abspath(d)


def verification_text(results):
    checked = [r for r in results if r["status"] == "ok" and r["family"] == "apnn" or
               (r["status"] == "ok" and r["impl"] in set(CUTLASS_KINDS) | set(NN_NAMES.values()))]
    wrong = [r for r in results if r["status"] == "WRONG"]
    nn_how = ("the first image of each batch against the numpy forward pass with the same random weights "
              "(`bench_baseline_nn.check_output`: exact for INT8 / BNN, relative 1e-3 / 3e-2 for FP32 / FP16)"
              if FLAGS.nn_verify else "**finiteness only (--nonn_verify)**")
    text = (f"Every APNN and CUTLASS / TCBNN result in these tables was checked against its numpy oracle in this "
            f"run before it was timed, with the benchmarks' own functions: GEMM `bench_gemm.run_one` / "
            f"`bench_baseline_gemm.verify` (all outputs where M*N*K <= 2^31, else 4096 sampled); CONV "
            f"`bench_conv.run_shape` (image 0 in full, raw and fused-epilogue output) / `bench_baseline_conv.verify` "
            f"(in full where cheap, else 64 sampled pixels); NN {nn_how}. "
            f"cuBLAS / cuDNN (PyTorch) results are timed only. "
            f"**{len(checked)} results verified, {len(wrong)} wrong.**")
    if wrong:
        text += "\n\n" + "\n".join(f"- WRONG: {r['impl']} {r['shape']} batch {r.get('batch', 0)}: {r['note']}"
                                   for r in wrong)
    return text


def write(directory, meta, results, sections, baseline_names, want_plots):
    plots = {}
    if want_plots:
        try:
            plots = report_render.plots(directory, results, sections, meta.get("plot_titles"))
        except ImportError as e:
            print(f"matplotlib not importable ({e}): no plots", flush=True)
    text = report_render.markdown(meta, results, sections, baseline_names, plots, verification_text(results))
    with open(os.path.join(directory, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1, default=str)
    return plots


def run(argv):
    """Parses argv (a whole command line, argv[0] included) and runs the report in this process; the flags are
    reset afterwards. Returns the exit status."""
    FLAGS(argv)
    try:
        return main(argv[:1], command=argv)
    finally:
        FLAGS.unparse_flags()


def main(argv, command=None):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    tiny = FLAGS.tiny or FLAGS.shapes == "tiny"
    if tiny:  # CI: a few calls are enough unless asked otherwise
        for name, value in (("iters", 3), ("warmup", 1), ("nn_iters", 2), ("nn_warmup", 1)):
            if not FLAGS[name].present:
                FLAGS[name].value = value
    sections = [s.strip() for s in FLAGS.sections]
    for s in sections:
        if s not in ("gemm", "conv", "nn"):
            raise app.UsageError(f"--sections: unknown {s!r}")
    directory = out_dir()
    os.makedirs(directory, exist_ok=True)
    env = Env()
    gemm_shapes = TINY_GEMM if tiny else SEED_GEMM
    hw, channels = TINY_CONV if tiny else SEED_CONV
    conv_batches = [int(b) for b in (FLAGS.conv_batch or (["1", "2"] if tiny else ["1", "8"]))]
    nn_batches = [int(b) for b in (FLAGS.nn_batch or (["1", "2"] if tiny else ["8", "256"]))]
    input_shape = TINY_INPUT if tiny else SEED_INPUT
    nn_width = FLAGS.nn_width if FLAGS.nn_width is not None else (0.125 if tiny else 1.0)
    m0 = gemm_shapes[0][0]
    titles = {
        "gemm": f"GEMM: M={m0}, N=K={gemm_shapes[0][1]}..{gemm_shapes[-1][1]}",
        "conv": f"CONV: {hw}x{hw}, 3x3, pad 1, C=O={channels[0]}..{channels[-1]}, batch "
                f"{', '.join(map(str, conv_batches))}",
        "nn": f"NN: {', '.join(MODEL_TITLES.get(m, m) for m in FLAGS.nn_models)} at "
              f"{input_shape[0]}x{input_shape[1]}" + (f", width x{nn_width:g}" if nn_width != 1.0 else "")
              + f", batch {', '.join(map(str, nn_batches))}",
    }
    meta = dict(
        gpu=env.gpu or "none (host backend: times are CPU wall-clock times, not GPU times)",
        backend=env.ctx.backend, device=env.ctx.device_name,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=command_line(command or sys.argv), versions=env.versions(),
        shapes=("tiny (CI smoke test, not the paper's shapes)" if tiny else "seed (APNN-TC's tables)"),
        timing=(f"GEMM / CONV: median of {FLAGS.iters} calls after {FLAGS.warmup} warm-up ("
                + ("APNN and CUTLASS: CUDA graph replays timed with CUDA events; PyTorch: CUDA graphs of 20 calls, 15 "
                   "replays, median" if env.ctx.backend == "cuda" else "host backend: wall clock")
                + f"); NN: median of {FLAGS.nn_iters} forward passes after {FLAGS.nn_warmup}; TOPS = 2*M*N*K (GEMM) "
                f"or 2*MACs (CONV, NN) / time; APNN w1: binary +-1 weights, wN>1: signed; activations unsigned"),
        section_titles=titles,
        plot_titles={"gemm": f"GEMM, M={m0}", "conv": f"CONV {hw}x{hw}, 3x3, pad 1"},
    )
    print(f"report: GPU {meta['gpu']}; apnn backend {env.ctx.backend}; {meta['versions']}", flush=True)
    print(f"report: CUTLASS baselines: {'yes' if env.ab else env.ab_reason}; PyTorch: "
          f"{'yes' if env.torch else env.torch_reason}", flush=True)
    baseline_names = {"gemm": GEMM_BASELINES, "conv": CONV_BASELINES,
                      "nn": [NN_NAMES.get(p, p) for p in FLAGS.nn_precisions] + ["cuDNN FP16"]}
    results, done = [], []
    started = time.time()
    for section in sections:
        print(f"report: {titles[section]} (at {time.time() - started:.1f} s)", flush=True)
        if section == "gemm":
            results += run_gemm(env, gemm_shapes)
        elif section == "conv":
            results += run_conv(env, hw, channels, conv_batches)
        else:
            results += run_nn(env, FLAGS.nn_models, nn_batches, input_shape, nn_width)
        done.append(section)
        write(directory, meta, results, done, baseline_names, want_plots=False)
    print(f"report: plots (at {time.time() - started:.1f} s)", flush=True)
    plots = write(directory, meta, results, done, baseline_names, want_plots=True)
    files = ["report.md", "results.json"] + list(plots.values())
    print(f"report: done in {time.time() - started:.1f} s; wrote "
          + ", ".join(os.path.join(directory, f) for f in files), flush=True)
    wrong = [r for r in results if r["status"] == "WRONG"]
    if wrong:
        print(f"report: {len(wrong)} WRONG results (see the report)", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
