"""The halo convolution (sm_90, padding K / 2, one input window per 8 x 8 output tile: 3x3 kernels
over at most 256 channels and 5x5 over at most 128 at stride 1, 1x1 and 3x3 over at most 256 at
stride 2) against the numpy oracle: raw int32 and fused packed outputs, the fused max pool, packed
residuals, ragged maps and channels, persistent blocks that walk several tiles, and whole networks
with it on and off. the conv_halo option 1 runs it on every call it serves,
however small; elsewhere the calls run the tiled kernels, and must give the same results."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import check_rows_by_chaining, random_packed_epilogue, random_residual_epilogue, requires_gpu

pytestmark = requires_gpu

SERVED_PLANES = [(1, 1), (2, 1), (2, 2)]  # (x_bit, w_bit)


def halo_context(setting=1):
    return apnn.Context("cuda", conv_halo=setting)


def served(ctx, x_bit, w_bit, x_enc="unsigned", c=64, k=3, stride=1):
    shape = (k in (3, 5) and c <= (256 if k == 3 else 128)) if stride == 1 else (k in (1, 3) and c <= 256)
    return ctx.compute_capability == 90 and (x_bit, w_bit) in SERVED_PLANES and x_enc != "binary" and shape


def check_raw_outputs(ctx, rng, cases, x_bit, w_bit, k, stride, setting="1"):
    """Int32 outputs of K x K convolutions (padding K / 2) over each case (n, h, w, c, o), with
    weights with and without offsets and zero points, against the oracle; the halo kernel (named
    _s2 at stride 2) runs exactly where it serves the call and conv_halo is 1."""
    for n, h, w, c, o in cases:
        for x_enc, w_enc, zw in [("unsigned", "binary" if w_bit == 1 else "signed", 0), ("signed", "unsigned", 1)]:
            if w_enc == "binary" and zw:
                continue
            desc = f"{(n, h, w, c, o)} k{k} s{stride} a{x_bit} {x_enc} w{w_bit} {w_enc} zw={zw}"
            x = reference.random_codes(rng, (n, h, w, c), x_bit, x_enc)
            wc = reference.random_codes(rng, (o, k, k, c), w_bit, w_enc)
            xt = apnn.pack_nhwc(ctx, x, x_bit, x_enc)
            wt = apnn.pack_conv_weights(ctx, wc, w_bit, w_enc, zw)
            name = apnn.conv2d_kernel_name(ctx, xt, wt, stride=stride, padding=k // 2)
            halo = setting == "1" and served(ctx, x_bit, w_bit, x_enc, c, k, stride)
            assert ("halo" in name) == halo, f"{desc}: {name}"
            assert ("_s2" in name) == (halo and stride == 2), f"{desc}: {name}"
            expected = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc,
                                        w_zero_point=zw, stride=stride, padding=k // 2)
            np.testing.assert_array_equal(apnn.conv2d_packed(ctx, xt, wt, stride=stride, padding=k // 2), expected, desc)


@pytest.mark.parametrize("x_bit,w_bit", SERVED_PLANES + [(3, 1), (1, 3)])
@pytest.mark.parametrize("setting", ["1", "0"])
@pytest.mark.parametrize("k", [3, 5])
def test_raw_outputs(rng, x_bit, w_bit, setting, k):
    # Ragged maps (partial tiles on both axes), channel counts from 1 to 256 (one entry, half
    # empty for <= 64; two above 128; 5x5 kernels only to 128), several column tiles, weight
    # encodings with offsets and zero points.
    ctx = halo_context(int(setting))
    cases = [(2, 9, 11, 64, 70), (1, 8, 8, 128, 128), (3, 5, 13, 100, 64), (1, 17, 7, 40, 200), (2, 16, 16, 1, 33),
             (1, 3, 3, 128, 130), (2, 9, 10, 256, 64), (1, 7, 12, 200, 96), (1, 6, 6, 129, 40)]
    check_raw_outputs(ctx, rng, cases, x_bit, w_bit, k, 1, setting)


def test_not_served_calls_keep_other_kernels(rng):
    # Binary activations (an offset), other strides, kernels and padding, > 256 channels (> 128
    # for 5x5).
    ctx = halo_context()
    for x_enc, c, k, stride, pad in [("binary", 64, 3, 1, 1), ("unsigned", 64, 3, 3, 1), ("unsigned", 64, 3, 1, 0),
                                     ("unsigned", 64, 3, 2, 0), ("unsigned", 64, 5, 2, 2), ("binary", 64, 1, 2, 0),
                                     ("unsigned", 320, 1, 2, 0), ("unsigned", 320, 3, 2, 1),
                                     ("unsigned", 64, 1, 1, 0), ("unsigned", 320, 3, 1, 1), ("unsigned", 64, 5, 1, 1),
                                     ("unsigned", 192, 5, 1, 2), ("unsigned", 64, 7, 1, 3)]:
        x_bit = 1 if x_enc == "binary" else 2
        x = reference.random_codes(rng, (2, 9, 9, c), x_bit, x_enc)
        wc = reference.random_codes(rng, (64, k, k, c), 1, "binary")
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit, x_enc), apnn.pack_conv_weights(ctx, wc, 1, "binary")
        assert "halo" not in apnn.conv2d_kernel_name(ctx, xt, wt, stride=stride, padding=pad)
        np.testing.assert_array_equal(
            apnn.conv2d_packed(ctx, xt, wt, stride=stride, padding=pad),
            reference.conv2d(x, wc, x_bit=x_bit, w_bit=1, x_encoding=x_enc, w_encoding="binary", stride=stride,
                             padding=pad))


@pytest.mark.parametrize("x_bit,w_bit", SERVED_PLANES)
@pytest.mark.parametrize("pool", ["none", "max"])
@pytest.mark.parametrize("k", [3, 5])
def test_fused_packed_outputs(rng, x_bit, w_bit, pool, k):
    # Threshold-table outputs of every <= 2-bit encoding (zero points, negative and zero scales),
    # with and without the fused 2x2 max pool over odd maps; one and several column tiles (the
    # row-sum workspace, run twice so it must be left clean); row sums checked by chaining.
    ctx = halo_context()
    cases = [(2, 9, 11, 64, 64, (2, "unsigned", 0), "relu"), (1, 12, 8, 128, 96, (1, "binary", 0), "none"),
             (3, 7, 7, 100, 128, (2, "signed", 1), "clip"), (2, 10, 6, 64, 200, (1, "unsigned", 0), "relu"),
             (1, 16, 16, 128, 256, (2, "unsigned", 0), "relu"), (2, 9, 9, 256, 128, (2, "unsigned", 0), "relu"),
             (1, 10, 11, 192, 64, (1, "binary", 0), "none")]
    w_enc = "binary" if w_bit == 1 else "signed"
    for n, h, w, c, o, (out_bits, out_enc, out_zp), activation in cases:
        desc = f"{(n, h, w, c, o)} k{k} a{x_bit} w{w_bit} out {out_bits}{out_enc}{out_zp} {activation} {pool}"
        x = reference.random_codes(rng, (n, h, w, c), x_bit, "unsigned")
        wc = reference.random_codes(rng, (o, k, k, c), w_bit, w_enc)
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, w_encoding=w_enc, padding=k // 2)
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit), apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
        ep, expected = random_packed_epilogue(ctx, rng, y, activation, pool, (out_bits, out_enc, out_zp))
        for _ in range(2):
            out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, out_zp)
            name = apnn.conv2d_kernel_name(ctx, xt, wt, padding=k // 2, epilogue=ep, out=out)
            assert ("halo" in name) == served(ctx, x_bit, w_bit, c=c, k=k), f"{desc}: {name}"
            apnn.conv2d_packed(ctx, xt, wt, padding=k // 2, epilogue=ep, out=out)
            np.testing.assert_array_equal(out.codes(), expected, desc)
            check_rows_by_chaining(ctx, rng, out, expected, out_bits, out_enc, out_zp, desc)


@pytest.mark.parametrize("residual", [(1, "binary", 0), (2, "signed", -1), (2, "unsigned", 1)],
                         ids=lambda r: f"{r[0]}{r[1]}{r[2]}")
@pytest.mark.parametrize("x_bit,w_bit", SERVED_PLANES)
def test_packed_residual(rng, residual, x_bit, w_bit):
    # One table part per residual code; two column tiles for 96 channels; 256 input channels.
    ctx = halo_context()
    r_bits, r_enc, r_zp = residual
    w_enc = "binary" if w_bit == 1 else "signed"
    for c, o in ((128, 64), (128, 96), (256, 128)):
        desc = f"residual {residual} a{x_bit} w{w_bit} c={c} o={o}"
        x = reference.random_codes(rng, (2, 9, 7, c), x_bit, "unsigned")
        wc = reference.random_codes(rng, (o, 3, 3, c), w_bit, w_enc)
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, w_encoding=w_enc, padding=1)
        r_codes = reference.random_codes(rng, y.shape, r_bits, r_enc)
        ep, expected = random_residual_epilogue(ctx, rng, y, r_codes, (r_bits, r_enc, r_zp))
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit), apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
        res = apnn.pack_nhwc(ctx, r_codes, r_bits, r_enc, r_zp)
        out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
        name = apnn.conv2d_kernel_name(ctx, xt, wt, padding=1, epilogue=ep, residual=res, out=out)
        assert ("halo" in name) == served(ctx, x_bit, w_bit), f"{desc}: {name}"
        apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, residual=res, out=out)
        np.testing.assert_array_equal(out.codes(), expected, desc)
        check_rows_by_chaining(ctx, rng, out, expected, 2, "unsigned", 0, desc)


@pytest.mark.parametrize("x_bit,w_bit", SERVED_PLANES + [(3, 1)])
@pytest.mark.parametrize("k", [1, 3])
def test_stride2_raw_outputs(rng, x_bit, w_bit, k):
    # Stride 2 (1x1 without padding, 3x3 with 1): even and odd maps, ragged tiles, maps of one and
    # two pixels, 1 to 256 channels, several column tiles, weights with offsets and zero points.
    ctx = halo_context()
    cases = [(2, 9, 11, 64, 70), (1, 16, 16, 128, 128), (3, 5, 13, 100, 64), (1, 17, 7, 40, 200), (2, 16, 16, 1, 33),
             (2, 15, 18, 256, 64), (1, 14, 12, 200, 96), (1, 6, 6, 129, 40), (1, 2, 2, 64, 64), (2, 1, 1, 8, 8)]
    check_raw_outputs(ctx, rng, cases, x_bit, w_bit, k, 2)


@pytest.mark.parametrize("x_bit,w_bit", SERVED_PLANES)
@pytest.mark.parametrize("k", [1, 3])
def test_stride2_fused_packed_outputs(rng, x_bit, w_bit, k):
    # Threshold-table outputs at stride 2, every <= 2-bit encoding, one and several column tiles
    # (run twice: the row-sum workspace must be left clean); row sums checked by chaining.
    ctx = halo_context()
    cases = [(2, 9, 11, 64, 64, (2, "unsigned", 0), "relu"), (1, 12, 8, 128, 96, (1, "binary", 0), "none"),
             (3, 7, 7, 100, 128, (2, "signed", 1), "clip"), (2, 10, 6, 64, 200, (1, "unsigned", 0), "relu"),
             (1, 16, 16, 256, 256, (2, "signed", 0), "none"), (1, 10, 11, 192, 64, (1, "binary", 0), "none")]
    w_enc = "binary" if w_bit == 1 else "signed"
    for n, h, w, c, o, (out_bits, out_enc, out_zp), activation in cases:
        desc = f"{(n, h, w, c, o)} k{k} s2 a{x_bit} w{w_bit} out {out_bits}{out_enc}{out_zp} {activation}"
        x = reference.random_codes(rng, (n, h, w, c), x_bit, "unsigned")
        wc = reference.random_codes(rng, (o, k, k, c), w_bit, w_enc)
        y = reference.conv2d(x, wc, x_bit=x_bit, w_bit=w_bit, w_encoding=w_enc, stride=2, padding=k // 2)
        xt, wt = apnn.pack_nhwc(ctx, x, x_bit), apnn.pack_conv_weights(ctx, wc, w_bit, w_enc)
        ep, expected = random_packed_epilogue(ctx, rng, y, activation, "none", (out_bits, out_enc, out_zp))
        for _ in range(2):
            out = apnn.empty_nhwc(ctx, expected.shape, out_bits, out_enc, out_zp)
            name = apnn.conv2d_kernel_name(ctx, xt, wt, stride=2, padding=k // 2, epilogue=ep, out=out)
            assert ("halo" in name) == served(ctx, x_bit, w_bit, c=c, k=k, stride=2), f"{desc}: {name}"
            apnn.conv2d_packed(ctx, xt, wt, stride=2, padding=k // 2, epilogue=ep, out=out)
            np.testing.assert_array_equal(out.codes(), expected, desc)
            check_rows_by_chaining(ctx, rng, out, expected, out_bits, out_enc, out_zp, desc)


def test_stride2_pool_and_residual_keep_tiled_kernels(rng):
    # The stride-2 kernels are built without the fused pool and the packed residual: those calls
    # run the tiled kernels, exactly.
    ctx = halo_context()
    x = reference.random_codes(rng, (2, 12, 12, 64), 2, "unsigned")
    wc = reference.random_codes(rng, (64, 3, 3, 64), 1, "binary")
    y = reference.conv2d(x, wc, x_bit=2, w_bit=1, w_encoding="binary", stride=2, padding=1)
    xt, wt = apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, wc, 1, "binary")
    ep, expected = random_packed_epilogue(ctx, rng, y, "relu", "max", (2, "unsigned", 0))
    out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
    assert "halo" not in apnn.conv2d_kernel_name(ctx, xt, wt, stride=2, padding=1, epilogue=ep, out=out)
    apnn.conv2d_packed(ctx, xt, wt, stride=2, padding=1, epilogue=ep, out=out)
    np.testing.assert_array_equal(out.codes(), expected, "pool")
    r_codes = reference.random_codes(rng, y.shape, 2, "signed")
    ep, expected = random_residual_epilogue(ctx, rng, y, r_codes, (2, "signed", 0))
    res = apnn.pack_nhwc(ctx, r_codes, 2, "signed")
    out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
    assert "halo" not in apnn.conv2d_kernel_name(ctx, xt, wt, stride=2, padding=1, epilogue=ep, residual=res, out=out)
    apnn.conv2d_packed(ctx, xt, wt, stride=2, padding=1, epilogue=ep, residual=res, out=out)
    np.testing.assert_array_equal(out.codes(), expected, "residual")


@pytest.mark.parametrize("k", [1, 3])
def test_stride2_persistent_blocks_walk_many_tiles(rng, k):
    # 48 images of 64 x 64 to 32 x 32: 768 tiles, more than the resident blocks, with the default
    # planner (enough tiles to choose the halo kernel by itself), raw and packed.
    ctx = apnn.Context("cuda")  # conv_halo "auto"
    n, hw, c, o = 48, 64, 64, 128
    x = reference.random_codes(rng, (n, hw, hw, c), 2, "unsigned")
    wc = reference.random_codes(rng, (o, k, k, c), 1, "binary")
    xt, wt = apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, wc, 1, "binary")
    assert ("halo" in apnn.conv2d_kernel_name(ctx, xt, wt, stride=2, padding=k // 2)) == (ctx.compute_capability == 90)
    y = reference.conv2d(x, wc, x_bit=2, w_bit=1, w_encoding="binary", stride=2, padding=k // 2)
    np.testing.assert_array_equal(apnn.conv2d_packed(ctx, xt, wt, stride=2, padding=k // 2), y)
    ep, expected = random_packed_epilogue(ctx, rng, y, "relu", "none", (2, "unsigned", 0))
    out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
    apnn.conv2d_packed(ctx, xt, wt, stride=2, padding=k // 2, epilogue=ep, out=out)
    np.testing.assert_array_equal(out.codes(), expected)
    check_rows_by_chaining(ctx, rng, out, expected, 2, "unsigned", 0, f"k{k} packed")


def test_persistent_blocks_walk_many_tiles(rng):
    # 64 images of 40 x 40: 1,600 tiles, several per resident block, with the default planner
    # (enough tiles to choose the halo kernel by itself), raw and pooled.
    ctx = apnn.Context("cuda")  # conv_halo "auto"
    n, hw, c, o = 64, 40, 64, 64
    x = reference.random_codes(rng, (n, hw, hw, c), 2, "unsigned")
    wc = reference.random_codes(rng, (o, 3, 3, c), 1, "binary")
    xt, wt = apnn.pack_nhwc(ctx, x, 2), apnn.pack_conv_weights(ctx, wc, 1, "binary")
    assert ("halo" in apnn.conv2d_kernel_name(ctx, xt, wt, padding=1)) == (ctx.compute_capability == 90)
    y = reference.conv2d(x, wc, x_bit=2, w_bit=1, w_encoding="binary", padding=1)
    np.testing.assert_array_equal(apnn.conv2d_packed(ctx, xt, wt, padding=1), y)
    scale = rng.uniform(0.02, 0.1, o).astype(np.float32)
    ep = apnn.Epilogue(ctx, o, scale=scale, activation="relu", pool="max", pool_size=2, out_scale=0.5)
    expected = reference.conv_epilogue(y, scale=scale, activation="relu", pool="max", pool_size=2,
                                       out=(2, "unsigned", 0, 0.5))
    out = apnn.empty_nhwc(ctx, expected.shape, 2, "unsigned")
    apnn.conv2d_packed(ctx, xt, wt, padding=1, epilogue=ep, out=out)
    np.testing.assert_array_equal(out.codes(), expected)
    check_rows_by_chaining(ctx, rng, out, expected, 2, "unsigned", 0, "pooled")


def set_same_random_weights(net, layers, weights, rng, w_bit):
    """Random weights for `layers`, drawn into `weights` on the first call and reused after (the
    same network built again under another setting)."""
    for i, layer in enumerate(layers):
        shape = net.weight_shape(layer)
        if len(weights) <= i:
            weights.append(dict(codes=reference.random_codes(rng, shape, w_bit, "binary" if w_bit == 1 else "signed"),
                                scale=rng.uniform(0.02, 0.3, shape[0]).astype(np.float32),
                                bias=rng.uniform(-2, 2, shape[0]).astype(np.float32)))
        net.set_weights(layer, **weights[i])


@pytest.mark.parametrize("bits", [(1, 2), (2, 2), (1, 1)], ids=["w1a2", "w2a2", "w1a1"])
def test_networks_with_and_without_halo(rng, bits):
    # Networks keep 64- and 128-channel taps packed (8 and 16 bytes per tap): a VGG-like block
    # with a fused pool, ResNet-like residual blocks (one with a stride-2 convolution and a 1x1
    # stride-2 downsample) and a 5x5 layer, on and off, against the oracle.
    w_bit, x_bit = bits
    x = rng.integers(0, 256, (3, 18, 18, 3)).astype(np.uint8)
    outputs, weights = [], []
    for setting in ("1", "0"):
        net = apnn.Network((18, 18, 3), context=apnn.Context("cuda", conv_halo=int(setting)))
        act = dict(w_bit=w_bit, out_bit=x_bit, out_scale=0.5)
        layers = [net.conv(64, 3, padding=1, **act)]
        layers.append(net.conv(64, 3, padding=1, pool="max", pool_size=2, **act))
        layers.append(net.conv(128, 3, padding=1, **act))
        layers.append(net.conv(128, 3, padding=1, **act))
        layers.append(net.conv(128, 3, padding=1, residual=layers[2], **act))
        layers.append(net.conv(128, 1, stride=2, input=layers[4], activation="none", out_encoding="signed",
                               w_bit=w_bit, out_bit=x_bit, out_scale=0.5))
        layers.append(net.conv(128, 3, stride=2, padding=1, input=layers[4], **act))
        layers.append(net.conv(128, 3, padding=1, residual=layers[5], **act))
        layers.append(net.conv(192, 3, padding=1, **act))  # packed taps of 192 channels: 24 bytes
        layers.append(net.conv(256, 3, padding=1, **act))
        layers.append(net.conv(128, 3, padding=1, **act))
        layers.append(net.conv(64, 5, padding=2, pool="max", pool_size=2, **act))
        layers.append(net.linear(10, output="float", w_bit=w_bit))
        set_same_random_weights(net, layers, weights, rng, w_bit)
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x), f"conv_halo={setting}")
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("bits", [(1, 2), (2, 2)], ids=["w1a2", "w2a2"])
def test_networks_keep_unpadded_rows_for_halo_layers(rng, bits):
    # Tensors of 33..64 and 97..128 channels that only halo convolutions and max pools touch keep
    # ceil(C / 32) words per row (the layer's row_words); a tensor with any other reader keeps its
    # 256-bit rows. Same outputs as network_unpadded=0, both equal to the oracle.
    w_bit, x_bit = bits
    x = rng.integers(0, 256, (3, 22, 22, 3)).astype(np.uint8)
    outputs, weights, row_words = [], [], []
    for setting in ("1", "0"):
        net = apnn.Network((22, 22, 3), context=apnn.Context("cuda", conv_halo=1, network_unpadded=int(setting)))
        act = dict(w_bit=w_bit, out_bit=x_bit, out_scale=0.5)
        stem = net.conv(64, 3, padding=1, **act)
        pool = net.maxpool(3, stride=2, padding=1, input=stem)  # 11 x 11 x 64, read by halo convs
        a = net.conv(64, 3, padding=1, input=pool, **act)
        b = net.conv(64, 3, padding=1, residual=pool, **act)
        down = net.conv(112, 1, stride=2, input=b, activation="none", out_encoding="signed",
                        w_bit=w_bit, out_bit=x_bit, out_scale=0.5)
        c = net.conv(112, 3, stride=2, padding=1, input=b, **act)
        d = net.conv(112, 3, padding=1, residual=down, **act)
        e = net.conv(48, 3, padding=1, input=d, **act)
        f = net.conv(48, 1, input=e, **act)  # a 1x1 at stride 1 is not the halo kernel's: e stays padded
        g = net.conv(96, 3, padding=1, input=f, **act)  # 3 words per row, read by a linear layer: padded
        fc = net.linear(10, input=g, output="float", w_bit=w_bit)
        layers = [stem, a, b, down, c, d, e, f, g, fc]
        set_same_random_weights(net, layers, weights, rng, w_bit)
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x), f"network_unpadded={setting}")
        row_words.append([net.layer_info(layer)["row_words"] for layer in (pool, a, b, down, c, d, e, f, g)])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert row_words[0] == [2, 2, 2, 4, 4, 4, 8, 8, 8], row_words[0]
    assert row_words[1] == [8] * 9, row_words[1]
