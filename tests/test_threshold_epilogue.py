"""Threshold epilogues (apnn.h, "Threshold epilogues"): a layer's packed codes from the caller's
integer thresholds on its exact result, checked against the oracle (reference.threshold_codes on
reference.conv2d) on random tables, both directions, residual tables, fused max pools, and the
kernels' narrow (<= 3 levels, <= 4 residual tables) and wide forms."""
import numpy as np
import pytest

import apnn
from apnn import reference
from conftest import BACKENDS


def random_table(rng, tables, channels, levels, spread):
    """Sorted random thresholds around 0, with some 'never' / 'always' entries and repeats."""
    t = np.sort(rng.integers(-spread, spread + 1, (tables, channels, levels)), axis=-1)
    t[rng.random(t.shape) < 0.05] = 2**31 - 1
    t[..., 0] = np.where(rng.random((tables, channels)) < 0.05, -2**31, t[..., 0])
    return np.sort(t, axis=-1).astype(np.int64)


def small_net(ctx, rng, *, out_bit, out_enc, residual_bits=None, pool=False, x_bit=2, channels=40, out=48):
    """input (2-bit) -> conv A (packed, float epilogue) -> conv B with a threshold table (and
    optionally A's output as its residual, a fused max pool). Returns the network, the input codes
    and the expected codes of B."""
    net = apnn.Network((9, 10, channels), input_bits=x_bit, context=ctx)
    r_bit = residual_bits or 2
    r_enc = "signed" if r_bit > 1 else "binary"
    a = net.conv(out, 3, padding=1, w_bit=1, out_bit=r_bit, out_encoding=r_enc, out_scale=0.25)
    b = net.conv(out, 3, padding=1, w_bit=2, input=a, residual=a if residual_bits else None, out_bit=out_bit,
                 out_encoding=out_enc, pool="max" if pool else "none", pool_size=2)
    wa = reference.random_codes(rng, net.weight_shape(a), 1, "binary")
    sa = rng.uniform(-0.05, 0.05, out).astype(np.float32)
    net.set_weights(a, codes=wa, scale=sa)
    wb = reference.random_codes(rng, net.weight_shape(b), 2, "signed")
    levels = 1 if out_enc == "binary" else 2**out_bit - 1
    tables = 2**r_bit if residual_bits else 1
    table = random_table(rng, tables, out, levels, spread=40)
    down = rng.random(out) < 0.4
    net.set_weights(b, codes=wb, thresholds=table if tables > 1 else table[0], descending=down)
    x = reference.random_codes(rng, (3, 9, 10, channels), x_bit, "unsigned")
    # The oracle, step by step.
    ya = reference.conv2d(x, wa, x_bit=x_bit, w_bit=1, w_encoding="binary", padding=1)
    ca = reference.conv_epilogue(ya, scale=sa, activation="relu", out=(r_bit, r_enc, 0, 0.25))
    yb = reference.conv2d(ca, wb, x_bit=r_bit, w_bit=2, x_encoding=r_enc, w_encoding="signed", padding=1)
    levels_r = None
    if residual_bits:
        levels_r = (ca + 1) // 2 if r_enc == "binary" else ca - reference.code_range(r_bit, r_enc)[0]
    expected = reference.threshold_codes(yb, table, bits=out_bit, encoding=out_enc, descending=down,
                                         residual_levels=levels_r)
    if pool:
        expected = reference.max_pool_codes(expected, 2, 2, 0)
    return net, x, expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("out_bit,out_enc", [(1, "binary"), (1, "unsigned"), (2, "unsigned"), (2, "signed"),
                                             (4, "unsigned"), (8, "signed")])
def test_thresholds_without_residual(backend, out_bit, out_enc, rng):
    net, x, expected = small_net(apnn.default_context(backend), rng, out_bit=out_bit, out_enc=out_enc)
    np.testing.assert_array_equal(net(x), expected)
    np.testing.assert_array_equal(net.reference(x), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("residual_bits,out_bit", [(1, 2), (2, 2), (2, 4), (3, 2)])
def test_thresholds_with_residual_tables(backend, residual_bits, out_bit, rng):
    net, x, expected = small_net(apnn.default_context(backend), rng, out_bit=out_bit, out_enc="unsigned",
                                 residual_bits=residual_bits)
    np.testing.assert_array_equal(net(x), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("out_bit", [2, 4])
def test_thresholds_with_fused_max_pool(backend, out_bit, rng):
    net, x, expected = small_net(apnn.default_context(backend), rng, out_bit=out_bit, out_enc="unsigned", pool=True,
                                 channels=64, out=64)
    np.testing.assert_array_equal(net(x), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_thresholds_on_a_linear_layer_over_an_average_pool(backend, rng):
    ctx = apnn.default_context(backend)
    net = apnn.Network((5, 6, 70), input_bits=3, context=ctx)
    gap = net.avgpool()
    fc = net.linear(33, input=gap, w_bit=1, out_bit=3, out_encoding="signed", out_zero_point=1)
    w = reference.random_codes(rng, net.weight_shape(fc), 1, "binary")
    table = random_table(rng, 1, 33, 7, spread=300)[0]
    net.set_weights(fc, codes=w, thresholds=table)
    x = reference.random_codes(rng, (4, 5, 6, 70), 3, "unsigned")
    y = np.einsum("nhwc,oc->no", x.astype(np.int64), w.astype(np.int64))[:, None, None, :]
    np.testing.assert_array_equal(net(x), reference.threshold_codes(y, table[None], bits=3, encoding="signed"))


def test_threshold_errors(host_ctx, rng):
    net = apnn.Network((4, 4, 8), context=host_ctx)
    c = net.conv(16, 3, padding=1, out_bit=2)
    f = net.conv(4, 1, input=c, output="float")
    w = reference.random_codes(rng, net.weight_shape(c), 1, "binary")
    good = np.zeros((16, 3), np.int64)
    with pytest.raises(apnn.InvalidArgumentError, match="shape"):
        net.set_weights(c, codes=w, thresholds=np.zeros((16, 2), np.int64))
    with pytest.raises(apnn.InvalidTypeError, match="integers"):
        net.set_weights(c, codes=w, thresholds=good.astype(np.float32))
    bad = good.copy()
    bad[5] = [3, 2, 4]
    with pytest.raises(apnn.InvalidArgumentError, match="channel 5 decreases"):
        net.set_weights(c, codes=w, thresholds=bad)
    with pytest.raises(apnn.InvalidArgumentError, match="without thresholds"):
        net.set_weights(c, codes=w, descending=np.zeros(16, bool))
    with pytest.raises(apnn.InvalidArgumentError, match="descending has"):
        net.set_weights(c, codes=w, thresholds=good, descending=np.zeros(3, bool))
    with pytest.raises(apnn.InvalidArgumentError, match="packed output"):
        net.set_weights(f, codes=reference.random_codes(rng, net.weight_shape(f), 1, "binary"),
                        thresholds=np.zeros((4, 3), np.int64))
    with pytest.raises(apnn.InvalidArgumentError, match="int32"):
        net.set_weights(c, codes=w, thresholds=good + 2**40)
