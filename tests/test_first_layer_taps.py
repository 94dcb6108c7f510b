"""The Hopper first layer (nn/first_layer_taps.cu: wgmma over windows of tap groups) against the
numpy oracle: kernels up to 15 x 15 (the API's largest), strides 1..4 (4: window entries shared
by neighbouring columns), 1..4 input channels, 1..64 output channels,
ragged maps (partial 8 x 8 tiles), every <= 2-bit output encoding and both threshold directions,
u8 and s8 images, and several tiles per block. first_layer_taps=1 requires the kernel (an
error where it does not take the layer, which is how a test knows it ran); =0 keeps the mma.sync
kernel, which must give the same bits."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import random_first_layer_quant, requires_gpu

pytestmark = requires_gpu


def hopper():
    return apnn.default_context("cuda").compute_capability == 90


def random_first_layer(rng, h, w, c, k, stride, pad, o, pool):
    """A from-image layer (8-bit or narrower codes, real_offset 0; weights whose real values fit
    int8; 1- or 2-bit output of any encoding) and a 1x1 int32 conv reading its codes and row sums,
    optionally through a 3x3 / 2 max pool (the first layer's tensor then has no padding words)."""
    layer = dict(random_first_layer_quant(rng, input_bits=(8, 8, 6)), o=o, k=k, stride=stride, pad=pad,
                 out_scale=float(rng.choice([0.5, 3.0, 40.0])), activation=str(rng.choice(["relu", "none", "clip"])),
                 pool=pool, shape=(h, w, c))
    # Scales of both signs (thresholds passed upwards and downwards) and some zero (constant).
    scale = rng.uniform(-0.3, 0.3, o).astype(np.float32)
    scale[rng.random(o) < 0.1] = 0.0
    codes = reference.random_codes(rng, (o, k, k, c), layer["w_bit"], layer["w_enc"])
    layer["weights"] = [dict(codes=codes, scale=scale, bias=rng.uniform(-4, 4, o).astype(np.float32)),
                        dict(codes=reference.random_codes(rng, (6, 1, 1, o), 1, "binary"))]
    return layer


def build(layer, taps="auto"):
    """The layer's network on a CUDA context whose first_layer_taps option is `taps`."""
    h, w, c = layer["shape"]
    net = apnn.Network((h, w, c), input_bits=layer["in_bits"], input_encoding=layer["in_enc"], input_scale=0.05,
                       context=apnn.Context("cuda", first_layer_taps=taps))
    first = net.conv(layer["o"], layer["k"], stride=layer["stride"], padding=layer["pad"], w_bit=layer["w_bit"],
                     w_encoding=layer["w_enc"], w_zero_point=layer["w_zp"], out_bit=layer["out_bit"],
                     out_encoding=layer["out_enc"], out_zero_point=layer["out_zp"], out_scale=layer["out_scale"],
                     activation=layer["activation"], clip=(-2.0, 5.0))
    if layer["pool"]:
        net.maxpool(3, 2, padding=1)
    last = net.conv(6, 1, output="int32")
    net.set_weights(first, **layer["weights"][0])
    net.set_weights(last, **layer["weights"][1])
    return net


def describe(layer):
    return (f"{layer['shape']} k{layer['k']}/s{layer['stride']}/p{layer['pad']} o={layer['o']} "
            f"w{layer['w_bit']}{layer['w_enc']}{layer['w_zp']} in {layer['in_bits']}{layer['in_enc']} "
            f"out {layer['out_bit']}{layer['out_enc']}{layer['out_zp']} pool={layer['pool']}")


def check_both_kernels(rng, layer, batch):
    x = reference.random_codes(rng, (batch, *layer["shape"]), layer["in_bits"], layer["in_enc"])
    outputs = {}
    for setting in ("1", "0"):
        net = build(layer, taps=int(setting))
        outputs[setting] = net(x)
        np.testing.assert_array_equal(outputs[setting], net.reference(x), err_msg=f"{describe(layer)} taps={setting}")
        net.benchmark(batch=batch, iters=1)
        assert dict(net.layer_times())["input"] == 0.0, "the layer did not run from the image"
        kernel = net.layer_info(1)["kernel"]
        assert kernel == ("first_layer_taps_wgmma" if setting == "1" else "first_layer_mma_sync"), kernel
    np.testing.assert_array_equal(outputs["1"], outputs["0"])


GEOMETRIES = [
    # h, w, c, k, stride, pad, o, batch: the three networks' first layers (ragged maps), then others
    (67, 61, 3, 11, 4, 2, 64, 3),   # AlexNet: 3 groups a row (odd: row pairs), 17 K steps
    (58, 71, 3, 7, 2, 3, 64, 2),    # ResNet-18: 2 groups a row
    (37, 45, 3, 3, 1, 1, 64, 2),    # VGG: 1 group a row, odd rows (a pair past the kernel)
    (19, 23, 1, 5, 1, 0, 33, 2),    # one channel, 33 outputs (a second word of one channel)
    (21, 17, 4, 3, 3, 1, 5, 3),     # four channels (no padding byte), stride 3
    (25, 30, 2, 9, 2, 4, 48, 1),    # two channels, 3 groups
    (40, 40, 3, 15, 4, 7, 64, 1),   # the largest kernel: 4 groups a row, 30 K steps, stride 4
    (35, 29, 3, 3, 4, 1, 16, 2),    # stride 4 (entries shared by columns), 1 group a row
    (44, 52, 4, 7, 4, 3, 40, 1),    # stride 4, 2 groups a row, four channels
    (30, 26, 3, 13, 1, 6, 1, 1),    # one output channel, 4 groups (the last with one tap)
    (9, 9, 3, 9, 1, 0, 20, 4),      # a 1 x 1 output map: 63 of each tile's 64 pixels outside
    (8, 8, 3, 3, 1, 1, 64, 1),      # exactly one tile
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("pool", [False, True], ids=["plain", "pooled"])
def test_taps_kernel_matches_oracle(rng, geometry, pool):
    if not hopper():
        pytest.skip("the wgmma first layer needs a compute capability 9.0 device")
    h, w, c, k, stride, pad, o, batch = geometry
    for _ in range(2):
        check_both_kernels(rng, random_first_layer(rng, h, w, c, k, stride, pad, o, pool), batch)


def test_taps_kernel_walks_many_tiles(rng):
    # 12 224 x 224 images at stride 1: 9,408 tiles, several per resident block, each block
    # filling the next tile's window while its MMAs run.
    if not hopper():
        pytest.skip("the wgmma first layer needs a compute capability 9.0 device")
    check_both_kernels(rng, random_first_layer(rng, 224, 224, 3, 3, 1, 1, 64, True), 12)


@pytest.mark.parametrize("model", ["alexnet", "vgg_variant", "resnet18"])
def test_models_with_and_without_taps(rng, model):
    # Small versions of the networks (4 first-layer channels, a max pool after it in AlexNet and
    # ResNet-18), with the Hopper kernel required and with the mma.sync kernel.
    if not hopper():
        pytest.skip("the wgmma first layer needs a compute capability 9.0 device")
    x = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    outputs = []
    for setting in ("1", "0"):
        net = apnn.models.build(model, context=apnn.Context("cuda", first_layer_taps=int(setting)), seed=11,
                                input_shape=(32, 32, 3),
                                width=1 / 16, num_classes=10)
        outputs.append(net(x))
        np.testing.assert_array_equal(outputs[-1], net.reference(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("case", ["channels", "input_channels"])
def test_taps_required_where_not_taken_is_an_error(rng, case):
    # 100 output channels (two wgmma N) or 5 input channels (two words a tap): the mma.sync
    # kernel's layers, so requiring the Hopper kernel fails with a clear error instead of running
    # another kernel. On other GPUs every layer fails so.
    c = 5 if case == "input_channels" else 3
    o = 100 if case == "channels" else 16
    net = apnn.Network((12, 12, c), input_bits=8, input_scale=0.05, context=apnn.Context("cuda", first_layer_taps=1))
    first = net.conv(o, 3, padding=1, w_bit=1, out_bit=2, out_scale=0.5)
    last = net.linear(4, output="float")
    net.set_weights(first, codes=reference.random_codes(rng, net.weight_shape(first), 1, "binary"),
                    scale=np.full(o, 0.1, np.float32), bias=np.zeros(o, np.float32))
    net.set_weights(last, codes=reference.random_codes(rng, net.weight_shape(last), 1, "binary"))
    with pytest.raises(apnn.UnsupportedError, match="first_layer_taps = 1"):
        net(rng.integers(0, 256, (2, 12, 12, c)).astype(np.uint8))


def test_float_images_run_on_the_mma_sync_kernel(rng):
    # A float image is quantized tap by tap, which the wgmma kernel's byte windows do not do: on
    # Hopper, with the wgmma kernel required, such a layer still plans and runs (it is one the
    # kernel takes), on the mma.sync kernel, and both image kinds equal the oracle.
    if not hopper():
        pytest.skip("the wgmma first layer needs a compute capability 9.0 device")
    layer = random_first_layer(rng, 20, 18, 3, 5, 2, 2, 24, False)
    layer["in_bits"], layer["in_enc"] = 8, "unsigned"
    net = build(layer, taps=1)
    for x in (rng.uniform(-1, 14, (2, 20, 18, 3)).astype(np.float32), rng.integers(0, 256, (2, 20, 18, 3)).astype(np.uint8)):
        np.testing.assert_array_equal(net(x), net.reference(x))
