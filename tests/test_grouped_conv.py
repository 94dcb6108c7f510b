"""Grouped and depthwise convolution (apnn.h, "Grouped convolution"): exact against the oracle
(reference.conv2d per group) for random shapes, encodings, zero points, strides and paddings, as a
call and inside networks (MobileNet-style depthwise + pointwise blocks, float and threshold
epilogues), and the errors for groups that do not divide the channels."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import HAS_GPU

# The CUDA path is built but refused until a GPU has verified it (network.cc, require_verified_on_cuda).
HOST = ["host"]


def random_quant(rng, bits_choices=(1, 2, 3, 4, 8)):
    bits = int(rng.choice(bits_choices))
    enc = "binary" if bits == 1 and rng.random() < 0.5 else str(rng.choice(["unsigned", "signed"]))
    zp = 0 if enc == "binary" else int(rng.integers(-2, 3))
    return bits, enc, zp


@pytest.mark.parametrize("backend", HOST)
@pytest.mark.parametrize("c,o,groups", [(37, 37, 37), (64, 64, 64), (6, 9, 3), (80, 40, 2), (96, 128, 4), (33, 66, 33)])
def test_grouped_conv2d_equals_the_oracle(backend, c, o, groups, rng):
    xb, xe, xz = random_quant(rng)
    wb, we, wz = random_quant(rng)
    k = int(rng.choice([1, 3, 5]))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, k))
    x = reference.random_codes(rng, (2, 7, 9, c), xb, xe)
    w = reference.random_codes(rng, (o, k, k, c // groups), wb, we)
    got = apnn.conv2d(x, w, x_bit=xb, w_bit=wb, x_encoding=xe, w_encoding=we, x_zero_point=xz, w_zero_point=wz,
                      stride=stride, padding=pad, groups=groups, backend=backend)
    want = reference.conv2d(x, w, x_bit=xb, w_bit=wb, x_encoding=xe, w_encoding=we, x_zero_point=xz,
                            w_zero_point=wz, stride=stride, padding=pad, groups=groups)
    np.testing.assert_array_equal(got, want, f"x {xb}{xe}{xz} w {wb}{we}{wz} k{k} s{stride} p{pad}")


def test_grouped_oracle_is_block_diagonal(rng):
    # The oracle itself against a dense convolution with zeroed off-group weights.
    x = reference.random_codes(rng, (1, 5, 5, 6), 2, "unsigned")
    w = reference.random_codes(rng, (4, 3, 3, 3), 2, "signed")
    dense = np.zeros((4, 3, 3, 6), np.int64)
    dense[:2, :, :, :3], dense[2:, :, :, 3:] = w[:2], w[2:]
    np.testing.assert_array_equal(
        reference.conv2d(x, w, x_bit=2, w_bit=2, w_encoding="signed", padding=1, groups=2),
        reference.conv2d(x, dense, x_bit=2, w_bit=2, w_encoding="signed", padding=1))


@pytest.mark.parametrize("backend", HOST)
def test_depthwise_network_blocks(backend, rng):
    """input -> conv 3x3 -> [depthwise 3x3 (stride 2) -> pointwise 1x1] x 2 -> avg pool -> fc, with
    the float epilogue on one depthwise layer and thresholds on the other."""
    ctx = apnn.default_context(backend)
    net = apnn.Network((12, 12, 3), context=ctx)
    stem = net.conv(32, 3, padding=1, w_bit=1, out_bit=2, out_scale=0.5)
    dw1 = net.conv(32, 3, stride=2, padding=1, groups=32, w_bit=2, out_bit=2, out_scale=0.5)
    pw1 = net.conv(48, 1, w_bit=1, out_bit=2, out_scale=0.5)
    dw2 = net.conv(48, 3, padding=1, groups=48, w_bit=4, out_bit=4, out_encoding="signed")
    pw2 = net.conv(64, 1, w_bit=1, out_bit=2, out_scale=0.5)
    net.avgpool()
    fc = net.linear(10, w_bit=2, output="float")
    for layer in (stem, dw1, pw1, pw2, fc):
        s = net.specs[layer]
        shape = net.weight_shape(layer)
        enc = s["w_encoding"]
        net.set_weights(layer, codes=reference.random_codes(rng, shape, s["w_bit"], enc),
                        scale=rng.uniform(0.01, 0.2, shape[0]).astype(np.float32),
                        bias=rng.uniform(-1, 1, shape[0]).astype(np.float32))
    table = np.sort(rng.integers(-60, 60, (48, 15)), axis=1)
    net.set_weights(dw2, codes=reference.random_codes(rng, net.weight_shape(dw2), 4, "signed"), thresholds=table,
                    descending=rng.random(48) < 0.3)
    x = rng.integers(0, 256, (3, 12, 12, 3)).astype(np.uint8)
    np.testing.assert_array_equal(net(x), net.reference(x))
    assert net.layer_info(dw1)["macs"] == 6 * 6 * 32 * 9


def test_groups_must_divide_channels(host_ctx):
    net = apnn.Network((4, 4, 6), context=host_ctx)
    with pytest.raises(apnn.InvalidArgumentError, match="groups = 4 must divide"):
        net.conv(8, 3, padding=1, groups=4)
    with pytest.raises(apnn.InvalidArgumentError, match="groups = -2 must divide"):
        net.conv(6, 3, padding=1, groups=-2)
    with pytest.raises(apnn.InvalidTypeError, match="groups must be an integer"):
        net.conv(6, 3, padding=1, groups=1.5)
    with pytest.raises(apnn.ApnnError, match="no groups|unexpected keyword"):
        net.linear(3, groups=2)
    x = apnn.pack_nhwc(host_ctx, np.zeros((1, 4, 4, 6), np.int32), 2)
    w = apnn.pack_conv_weights(host_ctx, np.zeros((4, 3, 3, 2), np.int32), 2, "signed")
    with pytest.raises(apnn.InvalidArgumentError, match="groups = 4 must divide"):
        apnn.conv2d_packed(host_ctx, x, w, padding=1, groups=4)
    with pytest.raises(apnn.InvalidArgumentError, match="channels per group"):
        apnn.conv2d_packed(host_ctx, x, w, padding=1, groups=2)
    w6 = apnn.pack_conv_weights(host_ctx, np.ones((6, 3, 3, 2), np.int32), 2, "signed")
    np.testing.assert_array_equal(apnn.conv2d_packed(host_ctx, x, w6, padding=1, groups=3), np.zeros((1, 4, 4, 6)))


@pytest.mark.skipif(not HAS_GPU, reason="no usable CUDA GPU on this machine")
def test_cuda_refuses_what_no_gpu_has_verified(cuda_ctx, rng):
    net = apnn.Network((4, 4, 8), context=cuda_ctx)
    with pytest.raises(apnn.UnsupportedError, match="not yet verified on a GPU"):
        net.conv(8, 3, padding=1, groups=8)
    c = net.conv(8, 3, padding=1)
    with pytest.raises(apnn.UnsupportedError, match="not yet verified on a GPU"):
        net.set_weights(c, codes=reference.random_codes(rng, net.weight_shape(c), 1, "binary"),
                        thresholds=np.zeros((8, 3), np.int64))
