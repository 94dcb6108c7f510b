"""The CUTLASS / TCBNN-style baselines against numpy oracles; errors without a GPU.

GPU tests skip cleanly where no GPU is usable; everything else runs on any machine.
"""
import zlib

import numpy as np
import pytest

import apnn_baselines as ab
from apnn_baselines import models, reference

try:  # the shared marker; tools/device/check_baselines.sh runs without conftest (no libapnn there)
    from conftest import requires_gpu
except Exception:  # noqa: BLE001
    requires_gpu = pytest.mark.skipif(ab.cuda_device_count() == 0, reason="no usable CUDA GPU on this machine")

HAS_GPU = ab.cuda_device_count() > 0
KINDS = list(ab.KINDS)
# CUTLASS 4.2's b1 XOR-popc mma is assert(0) on sm_90+: there the library refuses XOR (UnsupportedError).
XOR_OK = HAS_GPU and ab.xor_popc_supported()
XOR_UNSUPPORTED = "XOR-popc kernels are disabled on sm_"


def expect_result(kind, call, expected_fn):
    """Runs `call`; for int1-xor on cc >= 9.0 expects UnsupportedError (and a healthy context after
    it), else compares the result (first element when a tuple) with expected_fn() exactly."""
    if kind == "int1-xor" and not XOR_OK:
        with pytest.raises(ab.UnsupportedError, match=XOR_UNSUPPORTED):
            call()
        a = np.ones((4, 128), np.uint8)  # nothing was launched: the CUDA context still works
        assert np.array_equal(ab.gemm("int1-and", a, a), np.full((4, 4), 128))
        return None
    out = call()
    got = out[0] if isinstance(out, tuple) else out
    assert np.array_equal(got, expected_fn())
    return out


def make_rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# ---- Host: loading, packing, oracles, errors ---------------------------------------------------

def test_library_loads_and_reports():
    assert ab.version() == "0.1.0"
    assert ab.cuda_device_count() >= 0


def test_pack_layouts():
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]], np.uint8)
    assert reference.pack(bits, "int1-xor").tolist() == [[0x81, 0x03]]
    nib = np.array([[1, -1, -8, 7]], np.int8)
    assert reference.pack(nib, "int4").tolist() == [[0xF1, 0x78]]


def test_bnn_and_identity():
    """The sm_90 BNN path: for +-1 vectors of length K with bit vectors a, b (bit 1 = +1, padding
    bits 0 in both), sum x*w = 4 popc(a AND b) - 2 popc(a) - 2 popc(b) + K, equal to K - 2 popc(a XOR b)."""
    rng = make_rng("bnn-identity")
    for k in (1, 31, 32, 100, 577):
        a = rng.integers(0, 2, (6, k), dtype=np.uint8)
        b = rng.integers(0, 2, (5, k), dtype=np.uint8)
        pad = -k % 128
        ap, bp = np.pad(a, ((0, 0), (0, pad))), np.pad(b, ((0, 0), (0, pad)))
        dot = (2 * a.astype(int) - 1) @ (2 * b.astype(int) - 1).T
        and_ = reference.gemm("int1-and", ap, bp)
        pa, pb = ap.sum(1, dtype=int)[:, None], bp.sum(1, dtype=int)[None, :]
        assert np.array_equal(4 * and_ - 2 * pa - 2 * pb + k, dot)
        assert np.array_equal(k - 2 * reference.gemm("int1-xor", ap, bp), dot)


def test_gemm_oracle_matches_definition():
    rng = make_rng("oracle")
    a = rng.integers(0, 2, (5, 40), dtype=np.uint8)
    b = rng.integers(0, 2, (7, 40), dtype=np.uint8)
    xor = np.array([[np.sum(a[i] ^ b[j]) for j in range(7)] for i in range(5)])
    assert np.array_equal(reference.gemm("int1-xor", a, b), xor)
    assert np.array_equal(reference.gemm("int1-and", a, b), a.astype(int) @ b.T.astype(int))


def test_conv_oracle_matches_loops():
    rng = make_rng("conv-oracle")
    x = rng.integers(-8, 8, (1, 5, 6, 3))
    w = rng.integers(-8, 8, (4, 3, 3, 3))
    y = reference.conv("int4", x, w, stride=2, pad=1)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for p in range(y.shape[1]):
        for q in range(y.shape[2]):
            patch = xp[0, 2 * p:2 * p + 3, 2 * q:2 * q + 3, :]
            assert np.array_equal(y[0, p, q], np.einsum("rsc,orsc->o", patch, w))


@pytest.mark.parametrize("name", ["alexnet", "vgg_variant", "resnet18"])
def test_model_tables(name):
    layers = models.get(name)
    out = models.shapes(layers)
    assert out[-1] == (1, 1, 1000)
    if name == "alexnet":
        assert [s[:2] for s in out[:8:2]] == [(55, 55), (28, 28), (14, 14), (14, 14)]
        assert out[7] == (7, 7, 256) and 7 * 7 * 256 == 12544
    if name == "resnet18":
        assert abs(models.macs(layers) / 1e9 - 1.81) < 0.01
    if name == "vgg_variant":
        assert sum(layer["type"] == "conv" for layer in layers) == 13


@pytest.mark.parametrize("kind", KINDS)
def test_gemm_bad_arguments(kind):
    with pytest.raises(ab.InvalidArgumentError, match="same K"):
        ab.gemm(kind, np.zeros((2, 64), np.int8), np.zeros((2, 32), np.int8))
    with pytest.raises(ab.InvalidArgumentError, match="integer array"):
        ab.gemm(kind, np.zeros((2, 64), np.float32), np.zeros((2, 64), np.int8))
    with pytest.raises(ab.InvalidArgumentError, match="codes must lie"):
        ab.gemm(kind, np.full((2, 64), 9, np.int8), np.zeros((2, 64), np.int8))
    with pytest.raises(ab.InvalidArgumentError, match="kind must be"):
        ab.gemm("int2", np.zeros((2, 64), np.int8), np.zeros((2, 64), np.int8))


def test_c_api_checks_before_device():
    ffi, lib = ab.core._ffi.load()
    buf = np.zeros(1024, np.uint8)
    p = ffi.from_buffer(buf)
    status = lib.apnnb_gemm(0, 4, 4, 100, p, p, ffi.NULL, 0, 0, ffi.NULL)
    assert ffi.string(lib.apnnb_status_string(status)).decode() == "APNNB_STATUS_UNSUPPORTED"
    assert "K % 128" in ffi.string(lib.apnnb_last_error()).decode()
    status = lib.apnnb_gemm(2, 4, 4, 64, ffi.NULL, p, ffi.NULL, 0, 0, ffi.NULL)
    assert ffi.string(lib.apnnb_status_string(status)).decode() == "APNNB_STATUS_INVALID_ARGUMENT"
    status = lib.apnnb_conv(1, 1, 4, 4, 128, 6, 3, 1, 1, p, p, ffi.NULL, 0, 0, ffi.NULL)
    assert ffi.string(lib.apnnb_status_string(status)).decode() == "APNNB_STATUS_UNSUPPORTED"
    assert lib.apnnb_net_destroy(ffi.NULL) == 1
    assert lib.apnnb_net_create(0, 1, 8, 8, 3, ffi.NULL, 0, 0, ffi.NULL) == 1


def test_net_bad_tables():
    with pytest.raises(ab.InvalidArgumentError, match="multiple of 8"):
        ab.Net([models.conv(12, 3)], "fp32", input_shape=(8, 8, 3))
    with pytest.raises(ab.InvalidArgumentError, match="residual shape"):
        ab.Net([models.conv(8, 3), models.conv(16, 3, residual=0)], "fp32", input_shape=(8, 8, 3))
    with pytest.raises(ab.InvalidArgumentError, match="does not fit"):
        ab.Net([models.conv(8, 11, pad=0)], "int8", input_shape=(4, 4, 3))
    with pytest.raises(ab.InvalidArgumentError, match="precision"):
        ab.Net("alexnet", "fp64")


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error path")
def test_no_gpu_is_a_clear_error():
    with pytest.raises(ab.NoDeviceError, match="need a CUDA GPU"):
        ab.gemm("int1-and", np.zeros((4, 128), np.uint8), np.zeros((4, 128), np.uint8))
    with pytest.raises(ab.NoDeviceError):
        ab.conv("int4", np.zeros((1, 4, 4, 32), np.int8), np.zeros((4, 3, 3, 32), np.int8), pad=1)
    with pytest.raises(ab.NoDeviceError):
        ab.Net("alexnet", "fp16", batch=8)
    with pytest.raises(ab.NoDeviceError):
        ab.device_name()
    with pytest.raises(ab.NoDeviceError):
        ab.compute_capability()


# ---- GPU: every baseline against the oracle ------------------------------------------------------

@requires_gpu
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m,n,k", [(1, 4, 128), (64, 128, 128), (70, 36, 300), (128, 256, 1024), (200, 130, 512)])
def test_gemm_exact(kind, m, n, k):
    rng = make_rng("gemm", kind, m, n, k)
    a = reference.random_codes(rng, (m, k), kind)
    b = reference.random_codes(rng, (n, k), kind)
    expect_result(kind, lambda: ab.gemm(kind, a, b), lambda: reference.gemm(kind, a, b))


@requires_gpu
def test_xor_support_matches_compute_capability():
    major, minor = ab.compute_capability()
    assert major >= 8 and 0 <= minor <= 9
    assert ab.xor_popc_supported() == (major < 9)


@requires_gpu
@pytest.mark.parametrize("kind", KINDS)
def test_gemm_timing(kind):
    rng = make_rng("gemm-time", kind)
    a = reference.random_codes(rng, (64, 256), kind)
    b = reference.random_codes(rng, (256, 256), kind)
    out = expect_result(kind, lambda: ab.gemm(kind, a, b, warmup=2, iters=5), lambda: reference.gemm(kind, a, b))
    assert out is None or out[1] > 0


@requires_gpu
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,h,w,c,o,r,stride,pad", [(1, 8, 8, 128, 128, 3, 1, 1), (2, 9, 7, 256, 64, 3, 2, 1),
                                                    (1, 6, 6, 100, 20, 1, 1, 0), (1, 16, 16, 128, 256, 3, 1, 1)])
def test_conv_exact(kind, n, h, w, c, o, r, stride, pad):
    rng = make_rng("conv", kind, n, h, w, c, o, r, stride, pad)
    x = reference.random_codes(rng, (n, h, w, c), kind)
    wt = reference.random_codes(rng, (o, r, r, c), kind)
    out = expect_result(kind, lambda: ab.conv(kind, x, wt, stride=stride, pad=pad, warmup=1, iters=2),
                        lambda: reference.conv(kind, x, wt, stride, pad))
    assert out is None or out[1] > 0


def small_net():
    """conv, maxpool, residual block with a 1x1 projection, global avgpool, fc: every feature."""
    return [
        models.conv(16, 3, 1, 1),                                    # 0: 8x8x16
        models.maxpool(3, 2, 1),                                     # 1: 4x4x16
        models.conv(32, 1, 1, 0, relu=False, input=1),               # 2: projection
        models.conv(32, 3, 1, 1, input=1),                           # 3
        models.conv(32, 3, 1, 1, residual=2),                        # 4
        models.conv(40, 3, 2, 1),                                    # 5: 2x2x40
        models.avgpool(),                                            # 6: 1x1x40
        models.fc(24, relu=False),                                   # 7
    ]


def fc_net():
    return [models.conv(64, 3, 2, 1), models.maxpool(2, 2), models.fc(48), models.fc(16, relu=False)]


@requires_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "bnn"])
@pytest.mark.parametrize("table", ["small", "fc"])
def test_net_matches_oracle(precision, table):
    # bnn: the XOR-popc GEMM on sm_8x, the AND-popc GEMM + popcount identity on sm_90+; exact on both.
    rng = make_rng("net", precision, table)
    layers = small_net() if table == "small" else fc_net()
    in_shape = (8, 8, 5) if table == "small" else (12, 10, 35)
    batch = 3
    scales = {}
    net = ab.Net(layers, precision, batch=batch, input_shape=in_shape, seed=1)
    shapes = models.shapes(layers, in_shape)
    params = {}
    for i, layer in enumerate(layers):
        if layer["type"] not in ("conv", "fc"):
            continue
        src = i - 1 if layer["input"] == -1 else layer["input"]
        cin = (in_shape if src < 0 else shapes[src])
        k = (layer["kernel"] ** 2 * cin[2]) if layer["type"] == "conv" else int(np.prod(cin))
        o = layer["out_channels"]
        if precision == "int8":
            w = rng.integers(-20, 21, (o, k)).astype(np.float32)
            scales[i] = np.float32(1.0 / (4 * np.sqrt(k)))
        else:
            w = (rng.standard_normal((o, k)) / np.sqrt(k)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, o).astype(np.float32)
        params[i] = (w, b)
    if precision == "int8":  # scales are fixed at creation
        net = ab.Net(layers, precision, batch=batch, input_shape=in_shape, seed=1, scales=scales)
    for i, (w, b) in params.items():
        net.set_params(i, w, b)
    scale_in = 40.0 if precision == "int8" else 1.0
    x = (rng.standard_normal((batch,) + in_shape) * scale_in).astype(np.float32)
    out = net.run(x)
    assert out.shape == (batch,) + shapes[-1]
    ref = reference.net(precision, layers, x, params, scales)
    if precision in ("int8", "bnn"):
        np.testing.assert_array_equal(out, ref.astype(np.float32))
    else:
        tol = 1e-4 if precision == "fp32" else 2e-2
        assert np.max(np.abs(out - ref)) <= tol * max(1.0, np.max(np.abs(ref))), np.max(np.abs(out - ref))


@requires_gpu
@pytest.mark.parametrize("name", ["alexnet", "vgg_variant", "resnet18"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "bnn"])
def test_full_models_run(name, precision):
    net = ab.Net(name, precision, batch=1)
    x = make_rng("model", name).standard_normal((1, 224, 224, 3)).astype(np.float32)
    out, us = net.run(x, warmup=1, iters=1)
    assert out.shape == (1, 1, 1, 1000) and np.all(np.isfinite(out)) and us > 0
