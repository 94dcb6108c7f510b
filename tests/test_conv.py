"""Exactness of the packed convolution against the numpy oracle (apnn.reference.conv2d),
over kernels, strides, padding, ragged channels, every bit width and encoding, zero points."""
import itertools

import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import requires_gpu


def encodings_for(bits):
    return ["unsigned", "signed"] + (["binary"] if bits == 1 else [])


def zero_point_for(rng, bits, encoding):
    if encoding == "binary" or rng.random() < 0.5:
        return 0
    return int(rng.integers(-(2 ** bits), 2 ** bits + 1))


def check_conv(ctx, rng, n, h, w, c, o, k, stride, pad, x_bit, w_bit, x_enc, w_enc, zx=0, zw=0):
    kh, kw = (k, k) if np.isscalar(k) else k
    x = reference.random_codes(rng, (n, h, w, c), x_bit, x_enc)
    wc = reference.random_codes(rng, (o, kh, kw, c), w_bit, w_enc)
    kwargs = dict(x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc, x_zero_point=zx, w_zero_point=zw,
                  stride=stride, padding=pad)
    y = apnn.conv2d(x, wc, context=ctx, **kwargs)
    expected = reference.conv2d(x, wc, **kwargs)
    assert y.dtype == np.int32 and y.shape == expected.shape
    bad = np.argwhere(y != expected)
    assert bad.size == 0, (f"w{w_bit}a{x_bit} {x_enc}/{w_enc} zx={zx} zw={zw} x={x.shape} w={wc.shape} s={stride} "
                           f"p={pad}: {len(bad)} wrong, first at {bad[0]}: {y[tuple(bad[0])]} != "
                           f"{expected[tuple(bad[0])]}")


@pytest.mark.parametrize("x_bit,w_bit", list(itertools.product(range(1, 9), range(1, 9))))
def test_every_bit_width_encoding_and_zero_point(ctx, rng, x_bit, w_bit):
    for x_enc in encodings_for(x_bit):
        for w_enc in encodings_for(w_bit):
            k = int(rng.choice([1, 3, 5]))
            check_conv(ctx, rng, int(rng.integers(1, 3)), int(rng.integers(k, 9)), int(rng.integers(k, 9)),
                       int(rng.integers(1, 300)), int(rng.integers(1, 40)), k, int(rng.choice([1, 2])),
                       int(rng.integers(0, k)), x_bit, w_bit, x_enc, w_enc, zero_point_for(rng, x_bit, x_enc),
                       zero_point_for(rng, w_bit, w_enc))


@pytest.mark.parametrize("k,stride", [(1, 1), (1, 2), (3, 1), (3, 2), (5, 1), (5, 2), (7, 2), (7, 4), (11, 4),
                                      (11, 1)])
def test_kernel_sizes_strides_and_padding(ctx, rng, k, stride):
    for pad in sorted({0, k // 2, k - 1}):
        h = int(rng.integers(k, k + 10))
        check_conv(ctx, rng, 2, h, h + 1, int(rng.integers(1, 70)), int(rng.integers(1, 20)), k, stride, pad,
                   2, 1, "unsigned", "binary")


@pytest.mark.parametrize("x_enc,w_enc,zx,zw", [("binary", "binary", 0, 0), ("binary", "signed", 0, 1),
                                               ("unsigned", "unsigned", 3, 0), ("signed", "binary", -2, 0),
                                               ("unsigned", "signed", 5, -1), ("signed", "unsigned", 1, 7)])
def test_padding_is_real_zero(ctx, rng, x_enc, w_enc, zx, zw):
    # Tiny images with wide padding: most taps fall on padding, where neither the binary -1
    # nor a zero point may leak in.
    x_bit = 1 if x_enc == "binary" else 3
    w_bit = 1 if w_enc == "binary" else 3
    for h, w, k in [(1, 1, 3), (2, 3, 5), (3, 3, 7), (4, 2, 3)]:
        check_conv(ctx, rng, 2, h, w, 45, 9, k, 1, k - 1, x_bit, w_bit, x_enc, w_enc, zx, zw)
        check_conv(ctx, rng, 1, h, w, 300, 3, k, 2, k // 2, x_bit, w_bit, x_enc, w_enc, zx, zw)


@pytest.mark.parametrize("c,o", [(1, 1), (31, 33), (255, 1), (256, 256), (257, 129), (513, 7)])
def test_ragged_channels(ctx, rng, c, o):
    check_conv(ctx, rng, 1, 5, 4, c, o, 3, 1, 1, 2, 1, "unsigned", "binary")
    check_conv(ctx, rng, 1, 4, 4, c, o, 3, 2, 1, 2, 2, "signed", "signed", 1, 0)


def test_rectangular_kernel(ctx, rng):
    check_conv(ctx, rng, 2, 7, 9, 20, 6, (3, 5), (1, 2), (1, 2), 2, 1, "unsigned", "binary")


@pytest.mark.parametrize("n", [1, 8, 256])
def test_batch(ctx, rng, n):
    check_conv(ctx, rng, n, 4, 4, 16, 8, 3, 1, 1, 2, 1, "unsigned", "binary")


@requires_gpu
@pytest.mark.parametrize("split_k", [0, 1, 2, 3, 7, 64])
def test_cuda_split_k_is_exact(cuda_ctx, rng, split_k):
    apnn.set_conv_override(cuda_ctx, split_k=split_k)
    try:
        check_conv(cuda_ctx, rng, 1, 8, 8, 300, 70, 3, 1, 1, 2, 1, "unsigned", "binary")
        check_conv(cuda_ctx, rng, 2, 9, 7, 64, 130, 5, 2, 2, 3, 2, "signed", "unsigned", 1, 2)
    finally:
        apnn.set_conv_override(cuda_ctx)


@requires_gpu
@pytest.mark.parametrize("c", [128, 512, 1024])
def test_cuda_seed_shapes(cuda_ctx, rng, c):
    check_conv(cuda_ctx, rng, 1, 16, 16, c, c, 3, 1, 1, 2, 1, "unsigned", "binary")
    check_conv(cuda_ctx, rng, 8, 16, 16, c, c, 3, 1, 1, 2, 1, "unsigned", "binary")


@requires_gpu
def test_cuda_equals_host(host_ctx, cuda_ctx, rng):
    for _ in range(10):
        k = int(rng.choice([1, 3, 5, 7, 11]))
        h = int(rng.integers(k, 20))
        x_bit, w_bit = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        x = reference.random_codes(rng, (2, h, h, 100), x_bit, "signed")
        w = reference.random_codes(rng, (50, k, k, 100), w_bit, "unsigned")
        kw = dict(x_bit=x_bit, w_bit=w_bit, x_encoding="signed", stride=int(rng.choice([1, 2, 4])), padding=k // 2)
        np.testing.assert_array_equal(apnn.conv2d(x, w, context=cuda_ctx, **kw), apnn.conv2d(x, w, context=host_ctx, **kw))


def test_pack_nhwc_round_trip(ctx, rng):
    for bits, enc in [(1, "binary"), (3, "signed"), (8, "unsigned"), (5, "signed")]:
        codes = reference.random_codes(rng, (2, 3, 5, 300), bits, enc)
        t = apnn.pack_nhwc(ctx, codes, bits, enc)
        assert t.tensor_shape == (2, 3, 5, 300) and t.shape == (30, 300)
        np.testing.assert_array_equal(t.codes(), codes)


def test_weights_layout_pads_each_tap(ctx, rng):
    # apnn.h: tap t of row o starts at word t * Cpad/32; padding channels are zero bits.
    codes = reference.random_codes(rng, (3, 2, 2, 40), 1, "binary")
    w = apnn.pack_conv_weights(ctx, codes, 1, "binary")
    assert w.shape == (3, 2, 2, 40) and w.bits == 1 and w.encoding == "binary"


@requires_gpu
@pytest.mark.parametrize("config", ["0", "1", "2", "3", "4", "legacy"])
@pytest.mark.parametrize("split_k", [1, 2, 3, 8])
def test_cuda_tiled_configs_and_cluster_splits(rng, config, split_k):
    # Every kernel configuration (the conv_tiles option) and cluster split, raw and fused (packed
    # and float outputs), against the oracle.
    ctx = apnn.Context("cuda", conv_tiles=config if config == "legacy" else int(config))
    apnn.set_conv_override(ctx, split_k=split_k)
    check_conv(ctx, rng, 1, 8, 8, 300, 70, 3, 1, 1, 2, 1, "unsigned", "binary")
    check_conv(ctx, rng, 2, 9, 7, 64, 130, 5, 2, 2, 3, 2, "signed", "unsigned", 1, 2)
    check_conv(ctx, rng, 3, 6, 6, 1100, 40, 3, 1, 1, 1, 1, "binary", "binary")
    check_conv(ctx, rng, 2, 10, 10, 363, 64, 1, 1, 0, 8, 1, "unsigned", "binary")  # an im2col first layer
    for n, hw, c, o, x_bit in [(1, 16, 256, 256, 2), (2, 5, 96, 200, 3)]:
        x = reference.random_codes(rng, (n, hw, hw, c), x_bit, "unsigned")
        wc = reference.random_codes(rng, (o, 3, 3, c), 1, "binary")
        xt = apnn.pack_nhwc(ctx, x, x_bit, "unsigned")
        wt = apnn.pack_conv_weights(ctx, wc, 1, "binary")
        y_ref = reference.conv2d(x, wc, x_bit=x_bit, w_bit=1, x_encoding="unsigned", w_encoding="binary", padding=1)
        scale = rng.uniform(0.5, 1.5, o).astype(np.float32) / np.float32(30)
        bias = rng.uniform(-1, 1, o).astype(np.float32)
        ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, activation="relu", out_scale=0.25)
        for _ in range(2):  # twice: the row-sum workspace must be left clean
            out = apnn.empty_nhwc(ctx, y_ref.shape, 2, "unsigned")
            apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, out=out)
            expected = reference.conv_epilogue(y_ref, scale=scale, bias=bias, activation="relu",
                                               out=(2, "unsigned", 0, 0.25))
            np.testing.assert_array_equal(out.codes(), expected)
            # The row sums must be right too: chain the output into a 1x1 conv with binary weights.
            w1 = reference.random_codes(rng, (5, 1, 1, o), 1, "binary")
            y2 = apnn.conv2d_packed(ctx, out, apnn.pack_conv_weights(ctx, w1, 1, "binary"))
            np.testing.assert_array_equal(y2, reference.conv2d(expected, w1, x_bit=2, w_bit=1, x_encoding="unsigned",
                                                               w_encoding="binary"))
        yf = apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep)
        np.testing.assert_array_equal(yf, reference.conv_epilogue(y_ref, scale=scale, bias=bias, activation="relu"))


@requires_gpu
def test_cuda_more_row_tiles_than_grid_y_holds(rng):
    # 33 x 256 x 256 pixels in the 64x64 tiles' 32-pixel row tiles (2-bit activations): 67,584 row
    # tiles, past the 65,535 a grid's y holds (batch-256 networks reach that). Tiles run along grid
    # x; raw and fused (96 channels: two column tiles meeting in the row-sum workspace).
    ctx = apnn.Context("cuda", conv_tiles=0)
    n, hw, c, o = 33, 256, 32, 96
    x = reference.random_codes(rng, (n, hw, hw, c), 2, "unsigned")
    wc = reference.random_codes(rng, (o, 1, 1, c), 1, "binary")
    xt = apnn.pack_nhwc(ctx, x, 2, "unsigned")
    wt = apnn.pack_conv_weights(ctx, wc, 1, "binary")
    assert "b64x64" in apnn.conv2d_kernel_name(ctx, xt, wt)
    y_ref = reference.conv2d(x, wc, x_bit=2, w_bit=1, x_encoding="unsigned", w_encoding="binary")
    np.testing.assert_array_equal(apnn.conv2d_packed(ctx, xt, wt), y_ref)
    ep = apnn.Epilogue(ctx, o, scale=np.full(o, 1 / 16, np.float32), activation="relu")
    out = apnn.empty_nhwc(ctx, y_ref.shape, 2, "unsigned")
    apnn.conv2d_packed(ctx, xt, wt, epilogue=ep, out=out)
    expected = reference.conv_epilogue(y_ref, scale=np.full(o, 1 / 16, np.float32), activation="relu",
                                       out=(2, "unsigned", 0, 1.0))
    np.testing.assert_array_equal(out.codes(), expected)
    del y_ref
    # The row sums, through a chained 1x1 conv with binary weights (which reads them).
    w1 = reference.random_codes(rng, (3, 1, 1, o), 1, "binary")
    y2 = apnn.conv2d_packed(ctx, out, apnn.pack_conv_weights(ctx, w1, 1, "binary"))
    np.testing.assert_array_equal(y2, reference.conv2d(expected, w1, x_bit=2, w_bit=1, x_encoding="unsigned",
                                                       w_encoding="binary"))
