"""Whole networks (apnn.Network, apnn.models) against the numpy oracle apnn.reference.network:
bit for bit on the host backend and, where a GPU is present, on the CUDA backend."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import BACKENDS, random_first_layer_quant, requires_gpu

SMALL = dict(input_shape=(32, 32, 3), width=1 / 16, num_classes=10)


def images(rng, n, shape=(32, 32, 3)):
    return rng.integers(0, 256, (n, *shape)).astype(np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", [(1, 2), (2, 2)], ids=["w1a2", "w2a2"])
@pytest.mark.parametrize("model", ["alexnet", "vgg_variant", "resnet18", "resnet50"])
def test_small_models_match_oracle(model, bits, backend, rng):
    w_bit, x_bit = bits
    net = apnn.models.build(model, w_bit=w_bit, x_bit=x_bit, context=apnn.default_context(backend), seed=3, **SMALL)
    x = images(rng, 3)
    y = net(x)
    assert y.shape == (3, 1, 1, 10) and y.dtype == np.float32
    np.testing.assert_array_equal(y, net.reference(x))
    # Replays (the CUDA graph on a GPU) give the same result; a new batch re-plans.
    np.testing.assert_array_equal(net(x), y)
    np.testing.assert_array_equal(net(x[:1]), y[:1])


def _random_graph(rng, ctx):
    """A random network: convs (strides, padding, fused pools, residuals, encodings, zero points),
    max pools (fusable or padded), flatten / global average pool + linear, and a random output."""
    h = int(rng.integers(6, 13))
    in_bits = int(rng.choice([2, 4, 8]))
    in_enc = str(rng.choice(["unsigned", "signed"]))
    in_zp = int(rng.integers(-1, 2))
    net = apnn.Network((h, h, int(rng.integers(1, 6))), input_bits=in_bits, input_encoding=in_enc,
                       input_zero_point=in_zp, input_scale=float(rng.uniform(0.02, 0.2)), context=ctx)
    shapes = {0: (h, h)}
    cur = 0
    for _ in range(int(rng.integers(1, 5))):
        hh = shapes[cur][0]
        kind = rng.choice(["conv", "conv", "pool"]) if hh >= 3 else "conv"
        if kind == "pool":
            k = int(rng.integers(2, 4))
            pad = int(rng.integers(0, k // 2 + 1))
            cur = net.maxpool(k, int(rng.integers(1, k + 1)), pad)
        else:
            k = int(rng.choice([1, 3])) if hh >= 3 else 1
            w_bit = int(rng.integers(1, 4))
            out_bit = int(rng.integers(1, 4))
            out_enc = str(rng.choice(["unsigned", "signed", "binary"])) if out_bit == 1 else \
                str(rng.choice(["unsigned", "signed"]))
            stride = int(rng.integers(1, 3))
            pool = "none"
            conv_h = (hh + 2 * (k // 2) - k) // stride + 1
            # A same-shape residual: an earlier layer of the conv's output shape and channels.
            out_c = int(rng.integers(1, 40))
            residual = None
            cands = [i for i, s in enumerate(net.specs) if i > 0 and s["type"] in ("conv", "maxpool")
                     and net.layer_info(i)["shape"] == (conv_h, conv_h, net.layer_info(i)["shape"][2])]
            if cands and rng.random() < 0.5:
                residual = int(rng.choice(cands))
                out_c = net.layer_info(residual)["shape"][2]
            if conv_h >= 3 and rng.random() < 0.3:
                pool = str(rng.choice(["max", "avg"]))
            cur = net.conv(out_c, k, stride=stride, padding=k // 2, w_bit=w_bit,
                           w_encoding="binary" if w_bit == 1 and rng.random() < 0.7 else
                           str(rng.choice(["signed", "unsigned"])),
                           w_zero_point=int(rng.integers(-1, 2)) if w_bit > 1 else 0,
                           activation=str(rng.choice(["relu", "none", "clip"])), clip=(-1.0, 2.5),
                           pool=pool, pool_size=2, residual=residual,
                           residual_scale=float(rng.uniform(0.1, 1.0)), out_bit=out_bit, out_encoding=out_enc,
                           out_zero_point=0 if out_enc == "binary" else int(rng.integers(-1, 2)),
                           out_scale=float(rng.uniform(0.3, 2.0)))
        shapes[cur] = net.layer_info(cur)["shape"]
    # A head: linear over the tensor, a flatten or a global average pool; or the last conv itself.
    head = rng.choice(["linear", "flatten", "avgpool", "none"])
    output = str(rng.choice(["float", "int32", "packed"]))
    if head != "none" or net.specs[-1]["type"] != "conv":
        if head == "flatten":
            net.flatten()
        elif head == "avgpool":
            net.avgpool()
            if output == "int32":
                output = "float"
        net.linear(int(rng.integers(1, 20)), w_bit=int(rng.integers(1, 4)), output=output,
                   activation="none" if output == "int32" else "relu", out_scale=0.7)
    return net


def _set_random_weights(net, rng):
    for i, s in enumerate(net.specs):
        if s["type"] not in ("conv", "linear"):
            continue
        shape = net.weight_shape(i)
        o = shape[0]
        scale = rng.uniform(0.001, 0.2, o).astype(np.float32)
        bias = rng.uniform(-1, 1, o).astype(np.float32)
        if rng.random() < 0.3:  # float weights, quantized by the library
            net.set_weights(i, weights=rng.standard_normal(shape).astype(np.float32), weight_scale=0.4, scale=scale,
                            bias=bias)
        else:
            lo, hi = reference.code_range(s["w_bit"], s["w_encoding"])
            codes = reference.random_codes(rng, shape, s["w_bit"], s["w_encoding"])
            assert codes.min() >= lo and codes.max() <= hi
            net.set_weights(i, codes=codes, scale=scale, bias=bias)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(16))
def test_random_graphs_match_oracle(seed, backend):
    rng = np.random.default_rng(1000 + seed)
    net = _random_graph(rng, apnn.default_context(backend))
    _set_random_weights(net, rng)
    n = int(rng.integers(1, 4))
    shape = net.specs[0]["shape"]
    if rng.random() < 0.5:
        x = rng.uniform(-1, 2, (n, *shape)).astype(np.float32)
    else:
        s = net.specs[0]
        x = reference.random_codes(rng, (n, *shape), s["bits"], s["encoding"])
    y = net(x)
    expect = net.reference(x)
    assert y.shape == expect.shape, net.summary()
    np.testing.assert_array_equal(y, expect, err_msg=net.summary())


def test_fused_and_standalone_max_pool(host_ctx, rng):
    # A max pool fused into the conv epilogue (the conv is read only by it) and standalone (the
    # conv is also a residual elsewhere, so it cannot be fused): both exactly as the oracle.
    for extra_reader in (False, True):
        net = apnn.Network((9, 9, 4), context=host_ctx)
        c = net.conv(8, 3, padding=1, out_bit=3, out_scale=0.5)
        p = net.maxpool(3, 2)
        if extra_reader:
            net.conv(8, 3, padding=1, input=c, residual=c, out_bit=2)
        net.linear(5, input=p, output="float")
        for i, s in enumerate(net.specs):
            if s["type"] in ("conv", "linear"):
                net.set_weights(i, codes=reference.random_codes(rng, net.weight_shape(i), 1, "binary"),
                                scale=np.full(net.weight_shape(i)[0], 0.01, np.float32))
        x = images(rng, 2, (9, 9, 4))
        np.testing.assert_array_equal(net(x), net.reference(x))
        assert net.layer_info(p)["fused"] == (not extra_reader)


def test_row_words_of_planned_tensors(host_ctx, rng):
    # layer_info's row_words: 0 before planning and for a layer without a tensor of its own (a
    # conv writing into its fused pool); the packed layout's round_up(C, 256) / 32 words on the
    # host backend, which never drops the padding.
    net = apnn.Network((8, 8, 4), context=host_ctx)
    c = net.conv(64, 3, padding=1, out_scale=0.5)
    p = net.maxpool(2)
    d = net.conv(300, 3, padding=1, out_scale=0.5)
    net.linear(5, output="float")
    for i, s in enumerate(net.specs):
        if s["type"] in ("conv", "linear"):
            net.set_weights(i, codes=reference.random_codes(rng, net.weight_shape(i), 1, "binary"))
    assert [net.layer_info(i)["row_words"] for i in (c, p, d)] == [0, 0, 0]
    x = images(rng, 2, (8, 8, 4))
    np.testing.assert_array_equal(net(x), net.reference(x))
    assert [net.layer_info(i)["row_words"] for i in (c, p, d)] == [0, 8, 16]


def test_float_and_code_inputs(host_ctx, rng):
    net = apnn.Network((5, 5, 2), input_bits=4, input_scale=0.25, context=host_ctx)
    net.conv(3, 3, padding=1, w_bit=2, output="int32", activation="none")
    net.set_weights(1, codes=reference.random_codes(rng, net.weight_shape(1), 2, "signed"))
    xf = rng.uniform(-0.5, 5.0, (2, 5, 5, 2)).astype(np.float32)
    codes = reference.quantize(xf, 0.25, 4, "unsigned")
    np.testing.assert_array_equal(net(xf), net(codes.astype(np.uint8)))
    np.testing.assert_array_equal(net(xf), net.reference(xf))
    with pytest.raises(apnn.InvalidArgumentError, match="outside 0..15"):
        net(np.full((2, 5, 5, 2), 16, np.int32))


def test_load_npz_and_replan(host_ctx, rng, tmp_path):
    net = apnn.models.build("alexnet", weights=None, context=host_ctx, **SMALL)
    ref = apnn.models.build("alexnet", context=host_ctx, seed=5, **SMALL)
    data = {}
    for i, s in enumerate(ref.specs):
        if i in ref.params:
            p = ref.params[i]
            data[f"{s['name']}.codes"] = p["values"]
            data[f"{s['name']}.scale"] = p["scale"]
            data[f"{s['name']}.bias"] = p["bias"]
    np.savez(tmp_path / "w.npz", **data)
    net.load(str(tmp_path / "w.npz"))
    x = images(rng, 2)
    np.testing.assert_array_equal(net(x), ref(x))
    net.plan(4)
    np.testing.assert_array_equal(net(np.concatenate([x, x])), np.concatenate([ref(x), ref(x)]))


def test_benchmark_layer_times_and_summary(host_ctx, rng):
    net = apnn.models.build("resnet18", context=host_ctx, **SMALL)
    ms = net.benchmark(batch=2, iters=2, warmup=1)
    assert ms > 0
    times = net.layer_times()
    assert len(times) == len(net.specs)
    assert dict(times)["avgpool"] == 0.0 and dict(times)["conv1"] > 0
    text = net.summary()
    assert "layer4.1.conv2" in text and "w1a2" in text and "GOPs" in text
    assert net.total_macs() > 0
    with pytest.raises(apnn.ApnnError, match="benchmark"):
        apnn.models.build("alexnet", context=host_ctx, **SMALL).layer_times()


def test_full_size_tables_build():
    # The real shapes (224 x 224) plan-free: building checks every shape and the summary's totals.
    net = apnn.models.alexnet(backend="host", weights=None)
    assert net.layer_info("fout")["shape"] == (1, 1, 1000)
    assert net.layer_info("fc1")["macs"] == 7 * 7 * 256 * 4096
    assert net.layer_info("pool1")["shape"] == (28, 28, 64)
    r18 = apnn.models.resnet18(backend="host", weights=None)
    assert r18.layer_info("fc")["shape"] == (1, 1, 1000)
    assert r18.layer_info("layer4.1.conv2")["shape"] == (7, 7, 512)
    vgg = apnn.models.vgg_variant(backend="host", weights=None, w_bit=2, x_bit=2)
    assert vgg.layer_info("fc1")["macs"] == 7 * 7 * 512 * 4096


@pytest.mark.parametrize("backend", BACKENDS)
def test_sub_batches_match_oracle(rng, backend):
    # Large batches run as sub-batches with their own tensors; force them with a tiny limit.
    ctx = apnn.Context(backend, network_max_call_pixels=300)  # 256 pixels per image: 1 image each
    net = apnn.models.build("resnet18", context=ctx, seed=2, **SMALL)
    x = images(rng, 3)
    np.testing.assert_array_equal(net(x), net.reference(x))
    net2 = apnn.Network((6, 6, 2), context=ctx)
    net2.conv(3, 3, padding=1, out_bit=3)
    net2.set_weights(1, codes=reference.random_codes(rng, net2.weight_shape(1), 1, "binary"),
                     scale=np.full(3, 0.05, np.float32))
    x2 = images(rng, 5, (6, 6, 2))
    np.testing.assert_array_equal(net2(x2), net2.reference(x2))  # packed output, decoded per sub-batch


@requires_gpu
@pytest.mark.parametrize("model", ["alexnet", "vgg_variant", "resnet18"])
def test_dependent_launches_on_and_off_agree(model, rng):
    # Tiled convolutions start as programmatic dependents of the kernel before them (their
    # prologue overlaps its tail; they wait before reading activations); dependent_launch 0
    # launches them plainly. Both must equal the oracle, over replays of the captured graph and
    # at a batch large enough for every kernel kind (first layer, tiled, halo, pools, linear).
    x = images(rng, 24, (48, 48, 3))
    outputs = []
    for setting in ("1", "0"):
        net = apnn.models.build(model, context=apnn.Context("cuda", dependent_launch=int(setting)), seed=5, input_shape=(48, 48, 3), width=1 / 2,
                                num_classes=10)
        outputs.append(net(x))
        np.testing.assert_array_equal(net(x), outputs[-1])
        np.testing.assert_array_equal(outputs[-1], net.reference(x), f"dependent_launch={setting}")
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", ["alexnet", "vgg_variant", "resnet18"])
def test_first_layer_im2col_and_direct_forms_agree(model, backend, rng):
    # A 3-channel first convolution runs as an im2col GEMM (KH*KW*C padded once); the direct form
    # (network_im2col 0) pads C to 256 bits per tap. Both must equal the oracle.
    x = images(rng, 2)
    outputs = []
    for setting in ("1", "0"):
        net = apnn.models.build(model, context=apnn.Context(backend, network_im2col=int(setting)), seed=5, **SMALL)
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@requires_gpu
@pytest.mark.parametrize("model", ["alexnet", "vgg_variant", "resnet18"])
def test_first_layer_from_image_and_bitplane_forms_agree(model, rng):
    # On CUDA a first convolution with a <= 2-bit output runs straight from the 8-bit image on
    # dp4a (no packed input); network_from_image 0 keeps the bit-plane im2col form.
    x = images(rng, 3)
    outputs, input_ms = [], []
    for setting in ("1", "0"):
        net = apnn.models.build(model, context=apnn.Context("cuda", network_from_image=int(setting)), seed=7,
                                **SMALL)
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x))
        net.benchmark(batch=3, iters=2)
        input_ms.append(dict(net.layer_times())["input"])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # The from-image form has no input packing step; the bit-plane form has one.
    assert input_ms[0] == 0.0 and input_ms[1] > 0.0


@requires_gpu
@pytest.mark.parametrize("config", ["auto", "0", "1", "3", "4"])
@pytest.mark.parametrize("bits,x_zero_point", [((1, 2), 0), ((2, 2), 1), ((1, 1), 0), ((3, 2), 0)],
                         ids=["w1a2", "w2a2zp", "w1a1", "w3a2"])
def test_packed_taps_and_plain_layout_agree(bits, x_zero_point, config, rng):
    # On CUDA, layers over 64 / 128 / 192 channels keep their taps packed back to back (no 256-bit
    # padding per tap); network_pack_taps 0 keeps the plain layout. Strides, padding, a
    # residual, a zero point (the weight-offset corrections over the valid taps) and a linear
    # layer over a 3 x 3 x 64 map; both must equal the oracle.
    w_bit, x_bit = bits
    # Every tiled configuration: 4 (256x128, no packed taps) runs the plain layout, and with
    # packed taps falls back to 1.
    x = images(rng, 2, (15, 15, 3))
    outputs, weights = [], []
    for setting in ("1", "0"):
        ctx = apnn.Context("cuda", conv_tiles=config if config == "auto" else int(config),
                           network_pack_taps=int(setting))
        net = apnn.Network((15, 15, 3), context=ctx)
        act = dict(w_bit=w_bit, out_bit=x_bit, out_zero_point=x_zero_point, out_scale=0.5,
                   out_encoding="unsigned" if x_bit > 1 or x_zero_point == 0 else "signed")
        a = net.conv(64, 3, padding=1, **act)
        b = net.conv(128, 3, padding=1, **act)
        c = net.conv(64, 1, input=b, **act)
        d = net.conv(64, 3, padding=1, input=c, residual=a, **act)
        e = net.conv(192, 5, stride=2, padding=2, input=d, **act)
        f = net.conv(64, 3, stride=2, input=e, **act)
        g = net.linear(10, input=f, output="float", w_bit=w_bit)
        for n, i in enumerate((a, b, c, d, e, f, g)):
            shape = net.weight_shape(i)
            if len(weights) <= n:  # the same weights for both layouts
                weights.append(dict(codes=reference.random_codes(rng, shape, w_bit, "binary" if w_bit == 1 else "signed"),
                                    scale=rng.uniform(0.02, 0.3, shape[0]).astype(np.float32),
                                    bias=rng.uniform(-2, 2, shape[0]).astype(np.float32)))
            net.set_weights(i, **weights[n])
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def check_random_first_layer(rng, h, w, c, k, stride, pad, batch=2):
    # A random first layer inside the from-image form's contract (8-bit or narrower input codes or
    # float, real_offset 0; weights whose real values fit int8; 1- or 2-bit output of any encoding),
    # with a ragged channel count (several 64-channel passes), against the oracle.
    q = random_first_layer_quant(rng)
    in_bits, in_enc, w_bit, w_enc, w_zp = q["in_bits"], q["in_enc"], q["w_bit"], q["w_enc"], q["w_zp"]
    out_bit, out_enc, out_zp = q["out_bit"], q["out_enc"], q["out_zp"]
    o = int(rng.choice([5, 48, 64, 100, 130]))
    net = apnn.Network((h, w, c), input_bits=in_bits, input_encoding=in_enc, input_scale=0.05,
                       context=apnn.default_context("cuda"))
    net.conv(o, k, stride=stride, padding=pad, w_bit=w_bit, w_encoding=w_enc, w_zero_point=w_zp, out_bit=out_bit,
             out_encoding=out_enc, out_zero_point=out_zp, out_scale=float(rng.choice([0.5, 3.0, 40.0])),
             activation=str(rng.choice(["relu", "none", "clip"])), clip=(-2.0, 5.0))
    net.conv(6, 1, output="int32")
    net.set_weights(1, codes=reference.random_codes(rng, net.weight_shape(1), w_bit, w_enc),
                    scale=rng.uniform(-0.3, 0.3, o).astype(np.float32), bias=rng.uniform(-4, 4, o).astype(np.float32))
    net.set_weights(2, codes=reference.random_codes(rng, net.weight_shape(2), 1, "binary"))
    if rng.random() < 0.3:
        x = rng.uniform(-3, 8, (batch, h, w, c)).astype(np.float32)
    else:
        x = reference.random_codes(rng, (batch, h, w, c), in_bits, in_enc)
    desc = f"{h}x{w}x{c} k{k}/s{stride}/p{pad} o={o} w{w_bit}{w_enc}{w_zp} in {in_bits}{in_enc} out {out_bit}{out_enc}{out_zp}"
    np.testing.assert_array_equal(net(x), net.reference(x), err_msg=desc)
    net.benchmark(batch=batch, iters=1)
    assert dict(net.layer_times())["input"] == 0.0, "the layer did not run from the image"


@requires_gpu
@pytest.mark.parametrize("seed", range(12))
def test_first_layer_from_image_random(seed, rng):
    # (A 1x1 first layer is no im2col layer, so it never runs from the image.)
    h, w, c = int(rng.integers(7, 20)), int(rng.integers(7, 20)), int(rng.choice([1, 3, 4]))
    k = int(rng.choice([3, 5, 7]))
    stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, k))
    if (h + 2 * pad - k) < 0 or (w + 2 * pad - k) < 0:
        pad = k - 1
    check_random_first_layer(rng, h, w, c, k, stride, pad)


@requires_gpu
@pytest.mark.parametrize("c,k", [(3, 3), (1, 5), (3, 7), (3, 11), (3, 5), (1, 3), (2, 3), (4, 3)],
                         ids=lambda v: str(v))
def test_first_layer_from_image_kernel_rows(c, k, rng):
    # Each kernel row's KW*C bytes are padded to whole words along K (the last word of a row
    # partly zeros unless KW*C % 4 == 0): the networks' first-layer geometries and others, at
    # image edges (padding) and inside, with stride 1 and 2.
    for stride, pad in ((1, k // 2), (2, 0)):
        check_random_first_layer(rng, 13, 17, c, k, stride, pad)


@requires_gpu
@pytest.mark.parametrize("h,w,k,stride,pad,batch", [(224, 224, 3, 1, 1, 3), (67, 61, 11, 4, 2, 5), (58, 71, 7, 2, 3, 3),
                                                    (40, 45, 5, 1, 0, 4)], ids=lambda v: str(v))
def test_first_layer_from_image_large(h, w, k, stride, pad, batch, rng):
    # Receptive fields wholly inside the image take the unchecked word loads (whole warps of
    # them), the others the checked ones; three 224 x 224 images at stride 1 have more 16-pixel
    # tiles than the grid has warps, so each warp takes several.
    for _ in range(2):
        check_random_first_layer(rng, h, w, 3, k, stride, pad, batch=batch)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("encoding,zero_point,dtype", [("signed", 0, "float"), ("unsigned", 0, "codes"),
                                                        ("signed", 1, "codes"), ("unsigned", 2, "float")])
def test_first_layer_padding_with_input_offsets(encoding, zero_point, dtype, backend, rng):
    # im2col padding taps hold code 0, the real 0 only without a zero point: with one the network
    # keeps the direct form. A stride-2 5x5 kernel with padding 2 over a ragged 9x9x3 input.
    net = apnn.Network((9, 9, 3), input_bits=4, input_encoding=encoding, input_zero_point=zero_point,
                       input_scale=0.1, context=apnn.default_context(backend))
    net.conv(7, 5, stride=2, padding=2, w_bit=2, w_encoding="signed", out_bit=2, out_scale=0.5)
    net.linear(5, output="float")
    for i in (1, 2):
        o = net.weight_shape(i)[0]
        net.set_weights(i, codes=reference.random_codes(rng, net.weight_shape(i), 2 if i == 1 else 1,
                                                       "signed" if i == 1 else "binary"),
                        scale=rng.uniform(0.01, 0.2, o).astype(np.float32), bias=rng.uniform(-1, 1, o).astype(np.float32))
    if dtype == "float":
        x = rng.uniform(-2, 2, (3, 9, 9, 3)).astype(np.float32)
    else:
        x = reference.random_codes(rng, (3, 9, 9, 3), 4, encoding)
    np.testing.assert_array_equal(net(x), net.reference(x))


@requires_gpu
@pytest.mark.parametrize("res_bits,res_enc", [(1, "binary"), (1, "unsigned"), (2, "signed"), (2, "unsigned"), (3, "signed")])
@pytest.mark.parametrize("out_bits,out_enc", [(2, "unsigned"), (1, "binary"), (2, "signed")])
def test_residual_threshold_tables(res_bits, res_enc, out_bits, out_enc, rng):
    # On CUDA a layer with a packed residual of <= 2 bits runs its epilogue as one threshold table
    # per residual code (common/epilogue_thresholds.h); derived_thresholds 0 runs the float
    # steps. Both must equal the oracle, with residual scales of both signs and tiny / large ones.
    x = images(rng, 2, (12, 12, 3))
    residual_scale = float(rng.choice([-0.7, 1e-3, 0.5, 9.0]))
    activation = str(rng.choice(["relu", "none", "clip"]))
    outputs = []
    for setting in ("1", "0"):  # the same network twice
        net = apnn.Network((12, 12, 3), context=apnn.Context("cuda", derived_thresholds=int(setting)))
        a = net.conv(64, 3, padding=1, w_bit=1, out_bit=res_bits, out_encoding=res_enc, out_scale=0.5,
                     activation="relu" if res_enc == "unsigned" else "none")
        b = net.conv(64, 3, padding=1, w_bit=1, out_bit=2, out_scale=0.5)
        c = net.conv(64, 3, padding=1, input=b, residual=a, residual_scale=residual_scale, w_bit=1, out_bit=out_bits,
                     out_encoding=out_enc, out_scale=0.5, activation=activation, clip=(-1.0, 1.5))
        net.conv(32, 3, stride=2, input=c, w_bit=1, out_bit=2, out_scale=0.5)
        net.linear(10, output="float", w_bit=1)
        _set_random_weights(net, np.random.default_rng(7))
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chained_max_pools(backend):
    # A max pool read only by another max pool keeps unpadded rows; the host max pool once wrote
    # every word of its padded input into them (heap corruption found by tests/test_fuzz_api.py).
    rng = np.random.default_rng(11)
    net = apnn.Network((9, 9, 7), context=apnn.default_context(backend))
    c1 = net.conv(13, 4, padding=1, w_bit=3, out_bit=3, out_scale=0.5)
    net.maxpool(3, stride=1, padding=1)
    net.maxpool(2, stride=1, padding=1)
    c2 = net.conv(13, 4, padding=1, w_bit=3, output="float")
    for layer in (c1, c2):
        net.set_weights(layer, codes=reference.random_codes(rng, net.weight_shape(layer), 3, "signed"),
                        scale=rng.uniform(-0.2, 0.2, 13).astype(np.float32))
    x = rng.integers(0, 256, (2, 9, 9, 7)).astype(np.uint8)
    for _ in range(3):  # repeated runs: corruption shows as a crash or a changed result
        np.testing.assert_array_equal(net(x), net.reference(x))
    assert net.layer_info(2)["row_words"] == 1
