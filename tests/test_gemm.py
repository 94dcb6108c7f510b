"""Exactness of apnn.gemm against the independent numpy oracle (apnn.reference)."""
import itertools

import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import requires_gpu


def encodings_for(bits):
    return ["unsigned", "signed"] + (["binary"] if bits == 1 else [])


def check_gemm(ctx, rng, m, n, k, x_bit, w_bit, x_enc, w_enc, zx=0, zw=0):
    x = reference.random_codes(rng, (m, k), x_bit, x_enc)
    w = reference.random_codes(rng, (n, k), w_bit, w_enc)
    y = apnn.gemm(x, w, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc, x_zero_point=zx,
                  w_zero_point=zw, context=ctx)
    expected = reference.gemm(x, w, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc, x_zero_point=zx,
                              w_zero_point=zw)
    assert y.dtype == np.int32 and y.shape == (m, n)
    mismatch = np.argwhere(y != expected)
    assert mismatch.size == 0, (
        f"w{w_bit}a{x_bit} {x_enc}/{w_enc} {m}x{n}x{k}: {len(mismatch)} wrong, first at {mismatch[0]}: "
        f"{y[tuple(mismatch[0])]} != {expected[tuple(mismatch[0])]}")


@pytest.mark.parametrize("x_bit,w_bit", list(itertools.product(range(1, 9), range(1, 9))))
def test_every_bit_width_and_encoding(ctx, rng, x_bit, w_bit):
    for x_enc in encodings_for(x_bit):
        for w_enc in encodings_for(w_bit):
            m, n, k = rng.integers(1, 70), rng.integers(1, 70), rng.integers(1, 700)
            check_gemm(ctx, rng, m, n, k, x_bit, w_bit, x_enc, w_enc)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 5, 1), (3, 1, 257), (17, 33, 255), (129, 130, 256),
                                   (64, 128, 128), (100, 3, 2049), (7, 9, 5000)])
def test_odd_shapes(ctx, rng, m, n, k):
    check_gemm(ctx, rng, m, n, k, 2, 1, "unsigned", "binary")
    check_gemm(ctx, rng, m, n, k, 3, 2, "signed", "signed")


@pytest.mark.parametrize("x_enc,w_enc", [("unsigned", "unsigned"), ("signed", "unsigned"), ("unsigned", "binary")])
def test_zero_points(ctx, rng, x_enc, w_enc):
    w_bit = 1 if w_enc == "binary" else 4
    check_gemm(ctx, rng, 37, 45, 301, 4, w_bit, x_enc, w_enc, zx=7, zw=0 if w_enc == "binary" else -3)
    check_gemm(ctx, rng, 5, 6, 64, 8, w_bit, x_enc, w_enc, zx=-100, zw=2)


def test_extreme_values_are_exact(ctx):
    # Largest magnitudes of 8-bit codes at K = 16384 come close to the int32 limit.
    k = 16384
    for x_enc, w_enc, xv, wv in [("unsigned", "unsigned", 255, 255), ("signed", "signed", -128, -128),
                                 ("signed", "unsigned", -128, 255)]:
        x = np.full((3, k), xv, dtype=np.int32)
        w = np.full((2, k), wv, dtype=np.int32)
        y = apnn.gemm(x, w, x_bit=8, w_bit=8, x_encoding=x_enc, w_encoding=w_enc, context=ctx)
        assert (y == xv * wv * k).all()


def test_packed_layout_matches_the_header(ctx, rng):
    # apnn.h: plane i, row r, word w at (i * rows_padded + r) * words + w; bit k % 32 of word k / 32.
    codes = reference.random_codes(rng, (5, 300), 3, "signed")
    planes = ctx.pack(codes, 3, "signed").planes()
    assert planes.shape == (3, 128, 256 // 32 * 2)
    bits = (codes.astype(np.int64) & 0b111)
    for i in range(3):
        plane_bits = (bits >> i) & 1
        for r in range(5):
            for k in range(300):
                assert (planes[i, r, k // 32] >> (k % 32)) & 1 == plane_bits[r, k]
        assert not planes[i, 5:].any() and not (planes[i, :5, 300 // 32 + 1:]).any()
        assert (planes[i, :5, 300 // 32] >> (300 % 32)).max() == 0  # padding bits are zero


def test_quantize_pack_rounds_half_to_even(ctx):
    values = np.array([[0.5, 1.5, 2.5, -0.5, 7.6, 100.0, -3.0]], dtype=np.float32)
    x = ctx.quantize_pack(values, 1.0, 3, "signed")
    ones = ctx.pack(np.ones((1, 7), dtype=np.int8), 1, "unsigned")
    # Codes: 0, 2, 2, -0 -> 0, 3 (clamped 8 -> 3), 3 (clamped), -3; their sum through a GEMM with ones.
    assert ctx.gemm(x, ones)[0, 0] == 0 + 2 + 2 + 0 + 3 + 3 - 3


@requires_gpu
@pytest.mark.parametrize("m,n,k", [(64, 1024, 1024), (8, 4096, 4096), (300, 257, 16384), (1000, 999, 777)])
def test_cuda_large_shapes(cuda_ctx, rng, m, n, k):
    check_gemm(cuda_ctx, rng, m, n, k, 2, 1, "unsigned", "binary")
    check_gemm(cuda_ctx, rng, m, n, k, 4, 4, "signed", "unsigned")


WGMMA_CONFIGS = {9: [(1, 1), (2, 1)], 10: [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2)]}


@requires_gpu
@pytest.mark.parametrize("config,x_bit,w_bit", [(c, p, q) for c, pairs in WGMMA_CONFIGS.items() for p, q in pairs])
def test_wgmma_kernels(cuda_ctx, rng, config, x_bit, w_bit):
    """The sm_90a warpgroup kernels on ragged shapes (M, N, K off every tile), K up to 16384,
    every encoding and zero points; on other GPUs the pin falls back and the results still hold."""
    cases = [(129, 130, 1000, "unsigned", "binary" if w_bit == 1 else "signed", 0, 0),
             (300, 257, 16384, "signed", "unsigned", 0, 0),
             (1000, 999, 2049, "binary" if x_bit == 1 else "unsigned", "signed", 0, 0),
             (131, 64, 777, "unsigned", "unsigned", 1, -1)]
    try:
        cuda_ctx.set_gemm_override(config)
        for m, n, k, x_enc, w_enc, zx, zw in cases:
            x_codes = reference.random_codes(rng, (m, k), x_bit, x_enc)
            w_codes = reference.random_codes(rng, (n, k), w_bit, w_enc)
            x = cuda_ctx.pack(x_codes, x_bit, x_enc, zx)
            w = cuda_ctx.pack(w_codes, w_bit, w_enc, zw)
            if cuda_ctx.compute_capability == 90:
                assert "wgmma" in cuda_ctx.gemm_kernel_name(x, w)
            expected = reference.gemm(x_codes, w_codes, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc,
                                      w_encoding=w_enc, x_zero_point=zx, w_zero_point=zw)
            assert np.array_equal(cuda_ctx.gemm(x, w), expected), f"{m}x{n}x{k} {x_enc}/{w_enc}"
    finally:
        cuda_ctx.set_gemm_override()


@requires_gpu
@pytest.mark.parametrize("x_bit,w_bit", [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (4, 2), (4, 4), (8, 1), (8, 2)])
def test_fast_paths_agree_with_generic_and_every_tile(cuda_ctx, rng, x_bit, w_bit):
    x_codes = reference.random_codes(rng, (333, 1500), x_bit, "unsigned")
    w_codes = reference.random_codes(rng, (271, 1500), w_bit, "signed")
    x = cuda_ctx.pack(x_codes, x_bit, "unsigned")
    w = cuda_ctx.pack(w_codes, w_bit, "signed")
    results = {}
    try:
        for config in range(cuda_ctx.gemm_configs):
            for generic in (False, True):
                for split, clusters in ((1, True), (3, True), (2, False)):
                    cuda_ctx.set_gemm_override(config, split, generic, clusters)
                    results[(config, generic, split, clusters)] = (cuda_ctx.gemm_kernel_name(x, w), cuda_ctx.gemm(x, w))
    finally:
        cuda_ctx.set_gemm_override()
    names = {name for name, _ in results.values()}
    assert any(n.startswith("generic_") for n in names) and any(not n.startswith("generic_") for n in names)
    expected = reference.gemm(x_codes, w_codes, x_bit=x_bit, w_bit=w_bit, x_encoding="unsigned", w_encoding="signed")
    for key, (name, y) in results.items():
        assert np.array_equal(y, expected), f"{name} differs from the oracle"
    # Repeated calls reuse the split-K workspace: it must come back zeroed.
    cuda_ctx.set_gemm_override(2, 2, False, False)
    try:
        for _ in range(3):
            assert np.array_equal(cuda_ctx.gemm(x, w), expected)
    finally:
        cuda_ctx.set_gemm_override()
    # Split K through clusters and through the global workspace both ran (the names tell).
    assert any(n.endswith("c") for n in names) and any(n.endswith("split2") for n in names)
