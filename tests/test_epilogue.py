"""The fused epilogue (affine, residual, activation, pooling, re-quantization) against the
numpy oracle (apnn.reference.conv_epilogue), bit for bit, plus the convolution errors."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import check_rows_by_chaining, random_packed_epilogue, random_residual_epilogue, requires_gpu

OUT_KINDS = [(1, "binary"), (1, "unsigned"), (2, "unsigned"), (2, "signed"), (4, "signed"), (8, "unsigned"),
             (3, "signed"), (5, "unsigned")]


def random_case(rng, ctx):
    """A random convolution + epilogue; returns (library result, oracle result, description)."""
    k = int(rng.choice([1, 3, 5]))
    stride = int(rng.choice([1, 1, 2]))
    pad = int(rng.integers(0, k))
    n, c, o = int(rng.integers(1, 3)), int(rng.integers(1, 200)), int(rng.integers(1, 80))
    h, w = int(rng.integers(max(k, 4), 11)), int(rng.integers(max(k, 4), 11))
    x_bit, w_bit = int(rng.integers(1, 5)), int(rng.integers(1, 3))
    x_enc = str(rng.choice(["unsigned", "signed"] + (["binary"] if x_bit == 1 else [])))
    w_enc = str(rng.choice(["unsigned", "signed"] + (["binary"] if w_bit == 1 else [])))
    x = reference.random_codes(rng, (n, h, w, c), x_bit, x_enc)
    wc = reference.random_codes(rng, (o, k, k, c), w_bit, w_enc)
    y_int = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc, stride=stride,
                             padding=pad)
    oh, ow = y_int.shape[1:3]
    scale = (rng.standard_normal(o) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(o) * 2).astype(np.float32)
    activation = str(rng.choice(["none", "relu", "clip"]))
    clip = (-1.5, 3.25)
    pool = str(rng.choice(["none", "max", "avg"])) if min(oh, ow) >= 3 else "none"
    pool_size = int(rng.choice([2, 3]))
    pool_stride = int(rng.integers(1, pool_size + 1))
    residual_kind = str(rng.choice(["none", "int32", "packed"]))
    residual_scale = float(rng.choice([1.0, 0.25, -0.5]))
    out_bits, out_enc = OUT_KINDS[int(rng.integers(0, len(OUT_KINDS) + 1)) - 1] if rng.random() < 0.8 else (None, None)
    out_zp = 0 if out_enc in (None, "binary") else int(rng.integers(-2, 3))
    out_scale = float(rng.choice([0.5, 0.37, 1.0]))

    residual_values, residual_arg = None, None
    if residual_kind == "int32":
        residual_values = rng.integers(-1000, 1000, size=(n, oh, ow, o)).astype(np.int32)
        residual_arg = residual_values
    elif residual_kind == "packed":
        r_bits, r_enc, r_zp = 3, "signed", int(rng.integers(-2, 3))
        r_codes = reference.random_codes(rng, (n, oh, ow, o), r_bits, r_enc)
        residual_arg = apnn.pack_nhwc(ctx, r_codes, r_bits, r_enc, r_zp)
        residual_values = reference.decode(r_codes, r_bits, r_enc, r_zp)

    ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, residual_scale=residual_scale, activation=activation, clip=clip,
                       pool=pool, pool_size=pool_size, pool_stride=pool_stride, out_scale=out_scale)
    xt = apnn.pack_nhwc(ctx, x, x_bit, x_enc)
    wt = apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
    out_spec = None if out_bits is None else (out_bits, out_enc, out_zp, out_scale)
    expected = reference.conv_epilogue(y_int, scale=scale, bias=bias, residual=residual_values,
                                       residual_scale=residual_scale, activation=activation, clip=clip, pool=pool,
                                       pool_size=pool_size, pool_stride=pool_stride, out=out_spec)
    if out_bits is None:
        got = apnn.conv2d_packed(ctx, xt, wt, stride=stride, padding=pad, epilogue=ep, residual=residual_arg)
    else:
        out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, out_zp)
        apnn.conv2d_packed(ctx, xt, wt, stride=stride, padding=pad, epilogue=ep, residual=residual_arg, out=out)
        got = out.codes()
    desc = (f"x={x.shape} w{w_bit}a{x_bit} {x_enc}/{w_enc} k={k} s={stride} p={pad} act={activation} pool={pool}"
            f"{pool_size}/{pool_stride} residual={residual_kind} out={out_spec}")
    return got, expected, desc


def assert_same(got, expected, desc):
    assert got.shape == expected.shape, desc
    if got.dtype == np.float32:
        same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    else:
        same = got == expected
    bad = np.argwhere(~same)
    assert bad.size == 0, f"{desc}: {len(bad)} wrong, first at {bad[0]}: {got[tuple(bad[0])]} != " \
                          f"{expected[tuple(bad[0])]}"


@pytest.mark.parametrize("seed", range(40))
def test_random_fused_epilogues(ctx, rng, seed):
    got, expected, desc = random_case(rng, ctx)
    assert_same(got, expected, desc)


@requires_gpu
@pytest.mark.parametrize("seed", range(20))
def test_cuda_separate_epilogue_kernel(cuda_ctx, rng, seed):
    apnn.set_conv_override(cuda_ctx, split_k=int(rng.choice([0, 1, 3])), fuse=False)
    try:
        got, expected, desc = random_case(rng, cuda_ctx)
    finally:
        apnn.set_conv_override(cuda_ctx)
    assert_same(got, expected, desc)


def test_round_half_to_even_and_clamp(ctx):
    # 1x1 conv of x = 1 with weights w: y = w; out_scale 2 puts y/2 on halves.
    w = np.arange(-8, 8, dtype=np.int8).reshape(16, 1, 1, 1)
    x = np.ones((1, 1, 1, 1), dtype=np.int8)
    xt, wt = apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, w, 4, "signed")
    ep = apnn.Epilogue(ctx, 16, out_scale=2.0)
    out = apnn.empty_nhwc(ctx, (1, 1, 1, 16), 3, "signed", zero_point=1)
    codes = apnn.conv2d_packed(ctx, xt, wt, epilogue=ep, out=out).codes().reshape(-1)
    t = np.rint(np.arange(-8, 8) / 2.0)  # half to even: -3.5 -> -4, 2.5 -> 2
    np.testing.assert_array_equal(codes, np.clip(t, -4 - 1, 3 - 1) + 1)


EDGE_SCALES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.37, 1e-30, -1e-30, 3e38, -3e38, 0.013, -0.021, 2.0 ** -7, 7.0]


@pytest.mark.parametrize("out_bits,out_enc", [(1, "binary"), (1, "unsigned"), (2, "unsigned"), (2, "signed"),
                                              (3, "unsigned"), (4, "signed"), (4, "unsigned")])
@pytest.mark.parametrize("activation", ["none", "relu", "clip"])
@pytest.mark.parametrize("pool", ["none", "max"])
def test_threshold_form_edges(ctx, rng, out_bits, out_enc, activation, pool):
    # CUDA runs outputs of <= 2 bits without residual as compares against a per-channel table of
    # y thresholds; the scales hit its edges: zero and negative zero (constant channels), signs
    # (falling steps), tiny and huge magnitudes (inf after the multiply), exact ties of rint.
    o = len(EDGE_SCALES) * 3
    scale = np.array(EDGE_SCALES * 3, np.float32)
    bias = np.concatenate([np.zeros(len(EDGE_SCALES)), rng.standard_normal(len(EDGE_SCALES)) * 3,
                           np.full(len(EDGE_SCALES), -0.5)]).astype(np.float32)
    x = reference.random_codes(rng, (2, 5, 5, 96), 2, "unsigned")
    wc = reference.random_codes(rng, (o, 3, 3, 96), 2, "signed")
    y_int = reference.conv2d(x, wc, x_bit=2, w_bit=2, w_encoding="signed", padding=1)
    zp = 0 if out_enc == "binary" else int(rng.integers(-1, 2))
    out_spec = (out_bits, out_enc, zp, 0.5)
    ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, activation=activation, clip=(-1.0, 2.5), pool=pool,
                       pool_size=2, pool_stride=2, out_scale=0.5)
    expected = reference.conv_epilogue(y_int, scale=scale, bias=bias, activation=activation, clip=(-1.0, 2.5),
                                       pool=pool, pool_size=2, pool_stride=2, out=out_spec)
    out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, zp)
    apnn.conv2d_packed(ctx, apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, wc, 2, "signed"), padding=1,
                       epilogue=ep, out=out)
    assert_same(out.codes(), expected, f"out={out_spec} act={activation} pool={pool}")
    # Without an activation the huge scales reach both ends of the code range.
    if activation == "none":
        assert expected.min() == reference.code_range(out_bits, out_enc)[0]
        assert expected.max() == reference.code_range(out_bits, out_enc)[1]


@requires_gpu
@pytest.mark.parametrize("residual", [(1, "binary", 0), (1, "unsigned", 0), (2, "unsigned", 1), (2, "signed", -1)],
                         ids=lambda r: f"{r[0]}{r[1]}{r[2]}")
@pytest.mark.parametrize("out_bits,out_enc", [(1, "binary"), (2, "unsigned"), (2, "signed")])
@pytest.mark.parametrize("thresholds", ["1", "0"])
def test_cuda_threshold_tables_with_packed_residual(rng, residual, out_bits, out_enc, thresholds):
    # Through the C API, a packed residual of <= 2 bits takes one threshold table per residual
    # code (derived_thresholds 0: the float steps); both must equal the oracle, for signs of the
    # scale, a negative residual scale, and zero points on both sides.
    ctx = apnn.Context("cuda", derived_thresholds=int(thresholds))
    r_bits, r_enc, r_zp = residual
    x = reference.random_codes(rng, (2, 7, 9, 96), 2, "unsigned")
    wc = reference.random_codes(rng, (70, 3, 3, 96), 1, "binary")
    y_int = reference.conv2d(x, wc, x_bit=2, w_bit=1, w_encoding="binary", padding=1)
    r_codes = reference.random_codes(rng, y_int.shape, r_bits, r_enc)
    scale = (rng.uniform(0.01, 0.1, 70) * rng.choice([-1, 1], 70)).astype(np.float32)
    bias = rng.uniform(-2, 2, 70).astype(np.float32)
    zp = 0 if out_enc == "binary" else int(rng.integers(-1, 2))
    for residual_scale in (1.0, -0.5):
        ep = apnn.Epilogue(ctx, 70, scale=scale, bias=bias, residual_scale=residual_scale, activation="relu",
                           out_scale=0.5)
        expected = reference.conv_epilogue(y_int, scale=scale, bias=bias,
                                           residual=reference.decode(r_codes, r_bits, r_enc, r_zp),
                                           residual_scale=residual_scale, activation="relu",
                                           out=(out_bits, out_enc, zp, 0.5))
        out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, zp)
        apnn.conv2d_packed(ctx, apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, wc, 1, "binary"), padding=1,
                           epilogue=ep, residual=apnn.pack_nhwc(ctx, r_codes, r_bits, r_enc, r_zp), out=out)
        assert_same(out.codes(), expected, f"residual={residual} scale={residual_scale} out={out_bits}{out_enc}{zp}")


def test_chained_layers_keep_row_sums(ctx, rng):
    # The packed output feeds the next layer, whose binary weights need its row sums.
    x = reference.random_codes(rng, (2, 9, 9, 70), 2, "unsigned")
    w1 = reference.random_codes(rng, (40, 3, 3, 70), 1, "binary")
    w2 = reference.random_codes(rng, (20, 3, 3, 40), 1, "binary")
    scale = np.full(40, 0.05, np.float32)
    ep = apnn.Epilogue(ctx, 40, scale=scale, activation="relu", pool="max", pool_size=2, out_scale=0.5)
    mid = apnn.empty_nhwc(ctx, (2, 4, 4, 40), 2, "unsigned")
    apnn.conv2d_packed(ctx, apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, w1, 1, "binary"), padding=1,
                       epilogue=ep, out=mid)
    y1 = reference.conv2d(x, w1, x_bit=2, w_bit=1, w_encoding="binary", padding=1)
    mid_expected = reference.conv_epilogue(y1, scale=scale, activation="relu", pool="max", pool_size=2,
                                           out=(2, "unsigned", 0, 0.5))
    np.testing.assert_array_equal(mid.codes(), mid_expected)
    y2 = apnn.conv2d_packed(ctx, mid, apnn.pack_conv_weights(ctx, w2, 1, "binary"), padding=1)
    np.testing.assert_array_equal(y2, reference.conv2d(mid_expected, w2, x_bit=2, w_bit=1, w_encoding="binary",
                                                       padding=1))


# ---- Bad input ----------------------------------------------------------------------------


@requires_gpu
@pytest.mark.parametrize("config", ["0", "1", "3", "4"])
@pytest.mark.parametrize("split_k", [1, 3])
@pytest.mark.parametrize("thresholds", ["1", "0"])
def test_cuda_max_pool_fused_in_tiled_kernel(rng, config, split_k, thresholds):
    # A 2x2 / 2 max pool runs inside the tiled convolution's finish (the launch walks pixels window
    # by window): odd output sizes (the last row / column is dropped), several column tiles (the
    # row-sum workspace), one column tile (direct row sums), packed taps' channel counts, 1 and 2
    # activation planes, both epilogue forms; the row sums are checked by chaining a 1x1 conv.
    ctx = apnn.Context("cuda", conv_tiles=int(config), derived_thresholds=int(thresholds))
    apnn.set_conv_override(ctx, split_k=split_k)
    for n, h, w, c, o, x_bit, out_bits in [(2, 9, 11, 64, 130, 2, 2), (1, 12, 8, 200, 64, 1, 1), (3, 7, 7, 128, 32, 2, 2)]:
        x = reference.random_codes(rng, (n, h, w, c), x_bit, "unsigned")
        wc = reference.random_codes(rng, (o, 3, 3, c), 1, "binary")
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=1, w_encoding="binary", padding=1)
        scale = rng.uniform(0.01, 0.1, o).astype(np.float32) * rng.choice([-1, 1], o).astype(np.float32)
        bias = rng.uniform(-1, 1, o).astype(np.float32)
        ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, activation="relu", pool="max", pool_size=2, out_scale=0.5)
        expected = reference.conv_epilogue(y, scale=scale, bias=bias, activation="relu", pool="max", pool_size=2,
                                           out=(out_bits, "unsigned", 0, 0.5))
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit), apnn.pack_conv_weights(ctx, wc, 1, "binary")
        for _ in range(2):  # twice: the row-sum workspace must be left clean
            out = apnn.empty_nhwc(ctx, expected.shape, out_bits, "unsigned")
            assert apnn.conv2d_kernel_name(ctx, xt, wt, padding=1, epilogue=ep, out=out).endswith("_pool")
            apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, out=out)
            assert_same(out.codes(), expected, f"{(n, h, w, c, o, x_bit)} config={config} split={split_k}")
            check_rows_by_chaining(ctx, rng, out, expected, out_bits)


@requires_gpu
@pytest.mark.parametrize("config", ["0", "1", "3", "4"])
@pytest.mark.parametrize("finish", ["1", "0"])
def test_cuda_register_finish(rng, config, finish):
    # The tiled kernel's finish straight from the wgmma accumulators (sm_90; one K split, 1 or 2
    # planes per operand, activations without offset): raw int32 and fused packed outputs of every
    # <= 2-bit encoding (with a zero point), with and without the fused 2x2 max pool, negative and
    # zero scales, ragged pixel and channel counts; against the oracle, the row sums through a
    # chained 1x1 conv. conv_register_finish 0 runs the same calls on the shared-memory finish.
    ctx = apnn.Context("cuda", conv_tiles=int(config), conv_register_finish=int(finish))
    apnn.set_conv_override(ctx, split_k=1)
    cases = [  # n, h, w, c, o, (x_bit, x_enc), (w_bit, w_enc), (out_bits, out_enc, out_zp), activation, pool
        (2, 9, 11, 64, 130, (2, "unsigned"), (1, "binary"), (2, "unsigned", 0), "relu", "none"),
        (1, 12, 8, 200, 64, (1, "unsigned"), (1, "binary"), (1, "binary", 0), "none", "max"),
        (3, 7, 7, 128, 96, (2, "signed"), (2, "signed"), (2, "signed", 1), "clip", "none"),
        (2, 10, 6, 300, 33, (2, "unsigned"), (2, "unsigned"), (1, "unsigned", 0), "relu", "max"),
        (1, 16, 16, 256, 256, (2, "unsigned"), (1, "binary"), (2, "unsigned", 0), "relu", "max"),
        (2, 6, 5, 96, 200, (1, "unsigned"), (1, "unsigned"), (1, "signed", 0), "none", "none"),
        (1, 8, 8, 64, 64, (1, "binary"), (1, "binary"), (2, "unsigned", 0), "relu", "none"),  # ox != 0: not served
    ]
    for n, h, w, c, o, (x_bit, x_enc), (w_bit, w_enc), (out_bits, out_enc, out_zp), activation, pool in cases:
        desc = f"{(n, h, w, c, o)} a{x_bit} {x_enc} w{w_bit} {w_enc} out {out_bits} {out_enc} {activation} {pool}"
        served = (ctx.compute_capability == 90 and finish == "1" and (x_bit, w_bit) in [(1, 1), (2, 1), (2, 2)]
                  and x_enc != "binary")
        x = reference.random_codes(rng, (n, h, w, c), x_bit, x_enc)
        wc = reference.random_codes(rng, (o, 3, 3, c), w_bit, w_enc)
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc, padding=1)
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit, x_enc), apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
        assert ("_register_finish" in apnn.conv2d_kernel_name(ctx, xt, wt, padding=1)) == served, desc
        np.testing.assert_array_equal(apnn.conv2d_packed(ctx, xt, wt, padding=1), y, desc)
        ep, expected = random_packed_epilogue(ctx, rng, y, activation, pool, (out_bits, out_enc, out_zp))
        for _ in range(2):  # twice: the row-sum workspace must be left clean
            out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, out_zp)
            name = apnn.conv2d_kernel_name(ctx, xt, wt, padding=1, epilogue=ep, out=out)
            assert ("_register_finish" in name) == served, f"{desc}: {name}"
            apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, out=out)
            assert_same(out.codes(), expected, desc)
            check_rows_by_chaining(ctx, rng, out, expected, out_bits, out_enc, out_zp, desc)
    # A packed residual of 1 or 2 bits: one table part per residual code.
    for (r_bits, r_enc, r_zp), (x_bit, w_bit) in [((1, "binary", 0), (2, 1)), ((2, "signed", -1), (2, 2)),
                                                  ((2, "unsigned", 1), (1, 1))]:
        desc = f"residual {r_bits} {r_enc} {r_zp} a{x_bit} w{w_bit}"
        w_enc = "binary" if w_bit == 1 else "signed"
        x = reference.random_codes(rng, (2, 9, 7, 128), x_bit, "unsigned")
        wc = reference.random_codes(rng, (96, 3, 3, 128), w_bit, w_enc)
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, w_encoding=w_enc, padding=1)
        r_codes = reference.random_codes(rng, y.shape, r_bits, r_enc)
        ep, expected = random_residual_epilogue(ctx, rng, y, r_codes, (r_bits, r_enc, r_zp))
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit), apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
        res = apnn.pack_nhwc(ctx, r_codes, r_bits, r_enc, r_zp)
        out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
        served = ctx.compute_capability == 90 and finish == "1"
        name = apnn.conv2d_kernel_name(ctx, xt, wt, padding=1, epilogue=ep, residual=res, out=out)
        assert ("_register_finish" in name) == served, f"{desc}: {name}"
        apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, residual=res, out=out)
        assert_same(out.codes(), expected, desc)


@pytest.fixture
def small(ctx):
    x = apnn.pack_nhwc(ctx, np.ones((1, 6, 6, 8), np.int8), 2)
    w = apnn.pack_conv_weights(ctx, np.ones((4, 3, 3, 8), np.int8), 1, "binary")
    return ctx, x, w


def test_channel_mismatch(small):
    ctx, x, _ = small
    w = apnn.pack_conv_weights(ctx, np.ones((4, 3, 3, 9), np.int8), 1, "binary")
    with pytest.raises(apnn.InvalidArgumentError, match="C = 8 channels but w has C = 9"):
        apnn.conv2d_packed(ctx, x, w)


@pytest.mark.parametrize("stride,padding,match", [(0, 0, "stride"), (17, 0, "stride"), (1, 3, "padding"),
                                                  (1, -1, "padding"), ((1, 0), 0, "stride")])
def test_bad_stride_or_padding(small, stride, padding, match):
    ctx, x, w = small
    with pytest.raises(apnn.InvalidArgumentError, match=match):
        apnn.conv2d_packed(ctx, x, w, stride=stride, padding=padding)


def test_kernel_larger_than_input(ctx):
    x = apnn.pack_nhwc(ctx, np.ones((1, 2, 2, 8), np.int8), 2)
    w = apnn.pack_conv_weights(ctx, np.ones((4, 5, 5, 8), np.int8), 1, "binary")
    with pytest.raises(apnn.InvalidArgumentError, match="does not fit"):
        apnn.conv2d_packed(ctx, x, w)


def test_plain_matrix_is_not_a_tensor(small):
    ctx, _, w = small
    m = ctx.pack(np.ones((36, 8), np.int8), 2)
    with pytest.raises(apnn.InvalidTypeError, match="PackedTensor"):
        apnn.conv2d_packed(ctx, m, w)
    from apnn import _ffi
    ffi, lib = _ffi.load()
    args = ffi.new("apnn_conv_args_t*")
    args.x, args.w, args.stride_h, args.stride_w = m._handle, w._handle, 1, 1
    assert lib.apnn_conv2d(ctx._handle, args) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert "plain matrix" in ffi.string(lib.apnn_last_error()).decode()


def test_null_arguments_are_errors(ctx):
    from apnn import _ffi
    ffi, lib = _ffi.load()
    assert lib.apnn_conv2d(ffi.NULL, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_conv2d(ctx._handle, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    args = ffi.new("apnn_conv_args_t*")
    assert lib.apnn_conv2d(ctx._handle, args) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_epilogue_create(ctx._handle, ffi.NULL, ffi.new("apnn_epilogue_t*")) != 0
    assert lib.apnn_pack_conv_weights(ctx._handle, ffi.NULL, 0, 1, 1, 1, 1, ffi.NULL, ffi.NULL) != 0
    assert lib.apnn_conv_weights_destroy(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_epilogue_destroy(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT


def test_weight_code_out_of_range_names_position(ctx):
    codes = np.ones((2, 3, 3, 5), np.int32)
    codes[1, 2, 0, 4] = 0
    with pytest.raises(apnn.InvalidArgumentError, match=r"code 0 at \(1, 2, 0, 4\) is outside"):
        apnn.pack_conv_weights(ctx, codes, 1, "binary")


@pytest.mark.parametrize("shape", [(2, 16, 16, 4), (1, 3, 3, 0)])
def test_bad_weight_shapes(ctx, shape):
    with pytest.raises(apnn.InvalidArgumentError):
        apnn.pack_conv_weights(ctx, np.ones(shape, np.int8), 2)


def test_overflow_is_refused(ctx):
    x = apnn.pack_nhwc(ctx, np.ones((1, 11, 11, 2000), np.uint8), 8)
    w = apnn.pack_conv_weights(ctx, np.ones((1, 11, 11, 2000), np.uint8), 8)
    with pytest.raises(apnn.UnsupportedError, match="overflow"):
        apnn.conv2d_packed(ctx, x, w)


@pytest.mark.parametrize("kwargs,match", [
    (dict(scale=[np.nan] * 4), "scale"), (dict(bias=[np.inf] * 4), "bias"), (dict(scale=[1.0] * 3), "entries"),
    (dict(activation="clip", clip=(2.0, 1.0)), "clip"), (dict(pool="max", pool_size=4), "pool_size"),
    (dict(pool="avg", pool_size=2, pool_stride=3), "pool_stride"), (dict(out_scale=0.0), "out_scale"),
    (dict(activation="gelu"), "activation"), (dict(pool="min"), "pool")])
def test_bad_epilogue(ctx, kwargs, match):
    with pytest.raises(apnn.InvalidArgumentError, match=match):
        apnn.Epilogue(ctx, 4, **kwargs)


def test_epilogue_output_mismatches(small):
    ctx, x, w = small
    ep = apnn.Epilogue(ctx, 4)
    with pytest.raises(apnn.InvalidArgumentError, match="epilogue is for 5 channels"):
        apnn.conv2d_packed(ctx, x, w, epilogue=apnn.Epilogue(ctx, 5))
    with pytest.raises(apnn.InvalidArgumentError, match="y_packed has shape"):
        apnn.conv2d_packed(ctx, x, w, epilogue=ep, out=apnn.empty_nhwc(ctx, (1, 4, 4, 5), 2))
    with pytest.raises(apnn.InvalidArgumentError, match="needs an epilogue"):
        apnn.conv2d_packed(ctx, x, w, out=apnn.empty_nhwc(ctx, (1, 4, 4, 4), 2))
    with pytest.raises(apnn.InvalidArgumentError, match="residual has shape"):
        apnn.conv2d_packed(ctx, x, w, epilogue=ep, residual=apnn.pack_nhwc(ctx, np.ones((1, 4, 4, 3), np.int8), 2))
    with pytest.raises(apnn.InvalidArgumentError, match="residual_int32 holds"):
        apnn.conv2d_packed(ctx, x, w, epilogue=ep, residual=np.ones((1, 4, 4, 3), np.int32))
    with pytest.raises(apnn.InvalidArgumentError, match="residual needs an epilogue"):
        apnn.conv2d_packed(ctx, x, w, residual=np.ones((1, 4, 4, 4), np.int32))
    with pytest.raises(apnn.InvalidArgumentError, match="pooling window does not fit"):
        apnn.conv2d_packed(ctx, x, w, stride=4, epilogue=apnn.Epilogue(ctx, 4, pool="max", pool_size=2))
