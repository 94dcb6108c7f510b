"""Shared fixtures: contexts per backend; GPU tests skip cleanly where no GPU is usable."""
import zlib

import numpy as np
import pytest

import apnn
from apnn import reference

HAS_GPU = apnn.cuda_device_count() > 0
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="no usable CUDA GPU on this machine")

BACKENDS = ["host", pytest.param("cuda", marks=requires_gpu)]


@pytest.fixture(scope="session")
def host_ctx():
    return apnn.Context("host")


@pytest.fixture(scope="session")
def cuda_ctx():
    if not HAS_GPU:
        pytest.skip("no usable CUDA GPU on this machine")
    return apnn.Context("cuda")


@pytest.fixture(params=BACKENDS)
def ctx(request):
    return apnn.default_context(request.param)


@pytest.fixture
def rng(request):
    # A different, reproducible stream per test.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def random_first_layer_quant(rng, input_bits=(8, 8, 5)):
    """Random quantization inside the from-image first layer's contract: input codes of one of
    `input_bits` (either encoding), weights whose real values fit int8 (1, 2, 4 or 8 bits, binary,
    signed or unsigned with a zero point), a 1- or 2-bit output of any encoding."""
    q = dict(in_bits=int(rng.choice(list(input_bits))), in_enc=str(rng.choice(["unsigned", "signed"])),
             w_bit=int(rng.choice([1, 2, 4, 8])))
    q["w_enc"] = "binary" if q["w_bit"] == 1 and rng.random() < 0.6 else str(rng.choice(["signed", "unsigned"]))
    if q["w_bit"] == 8:
        q["w_enc"] = "signed"  # 8-bit unsigned real values do not fit int8
    q["w_zp"] = 0 if q["w_enc"] == "binary" or q["w_bit"] == 8 else int(rng.integers(-1, 2))
    q["out_bit"] = int(rng.choice([1, 2]))
    q["out_enc"] = "binary" if q["out_bit"] == 1 and rng.random() < 0.4 else str(rng.choice(["unsigned", "signed"]))
    q["out_zp"] = 0 if q["out_enc"] == "binary" else int(rng.integers(-1, 2))
    return q


def check_rows_by_chaining(ctx, rng, out, expected, out_bits, out_enc="unsigned", out_zp=0, desc=""):
    """A packed output's row sums, checked by chaining it into a 1x1 conv with binary weights (the
    conv reads them for its correction term) against the oracle on the expected codes."""
    w1 = reference.random_codes(rng, (5, 1, 1, expected.shape[-1]), 1, "binary")
    np.testing.assert_array_equal(
        apnn.conv2d_packed(ctx, out, apnn.pack_conv_weights(ctx, w1, 1, "binary")),
        reference.conv2d(expected, w1, x_bit=out_bits, w_bit=1, x_encoding=out_enc, x_zero_point=out_zp,
                         w_encoding="binary"), desc)


def random_packed_epilogue(ctx, rng, y, activation, pool, out):
    """An epilogue over int32 result y for `out` = (bits, encoding, zero point) codes at scale 0.5:
    per-channel scales of both signs and some zero, biases, clip (-0.75, 1.5) and `pool` 2x2.
    Returns it with the oracle's expected codes."""
    o = y.shape[-1]
    scale = (rng.uniform(0.01, 0.1, o) * rng.choice([-1, 0, 1, 1], o)).astype(np.float32)
    bias = rng.uniform(-1, 1, o).astype(np.float32)
    ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, activation=activation, clip=(-0.75, 1.5), pool=pool,
                       pool_size=2, out_scale=0.5)
    expected = reference.conv_epilogue(y, scale=scale, bias=bias, activation=activation, clip=(-0.75, 1.5),
                                       pool=pool, pool_size=2, out=(*out, 0.5))
    return ep, expected


def random_residual_epilogue(ctx, rng, y, r_codes, r_quant):
    """An epilogue adding a packed residual (r_codes of r_quant = (bits, encoding, zero point)) at
    scale -0.5 to int32 result y, scales of both signs, ReLU, 2-bit unsigned codes at scale 0.5.
    Returns it with the oracle's expected codes."""
    o = y.shape[-1]
    scale = (rng.uniform(0.01, 0.1, o) * rng.choice([-1, 1], o)).astype(np.float32)
    bias = rng.uniform(-2, 2, o).astype(np.float32)
    ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, residual_scale=-0.5, activation="relu", out_scale=0.5)
    expected = reference.conv_epilogue(y, scale=scale, bias=bias, residual=reference.decode(r_codes, *r_quant),
                                       residual_scale=-0.5, activation="relu", out=(2, "unsigned", 0, 0.5))
    return ep, expected
