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
