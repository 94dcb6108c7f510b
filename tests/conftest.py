"""Shared fixtures: contexts per backend; GPU tests skip cleanly where no GPU is usable."""
import zlib

import numpy as np
import pytest

import apnn

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
