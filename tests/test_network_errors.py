"""Bad networks fail with a C status and a clear message, raised as apnn.ApnnError subclasses."""
import numpy as np
import pytest

import apnn
from apnn import reference


@pytest.fixture
def net(host_ctx):
    return apnn.Network((8, 8, 3), context=host_ctx)


def _weights(net, i, rng=np.random.default_rng(0)):
    net.set_weights(i, codes=reference.random_codes(rng, net.weight_shape(i), 1, "binary"))


def test_residual_shape_mismatch(net):
    a = net.conv(4, 3, padding=1)
    with pytest.raises(apnn.InvalidArgumentError, match=r"residual layer 1 \(conv\) has shape 8 x 8 x 4.*shape "
                                                        r"mismatch") as e:
        net.conv(4, 3, stride=2, padding=1, residual=a)
    assert e.value.status == "APNN_STATUS_INVALID_ARGUMENT"
    assert "apnn_network_add_conv" in str(e.value)


def test_kernel_does_not_fit(net):
    with pytest.raises(apnn.InvalidArgumentError, match="does not fit"):
        net.conv(4, 9)
    with pytest.raises(apnn.InvalidArgumentError, match="pool window does not fit"):
        net.maxpool(11)


def test_unsupported_layer_orders(net):
    net.conv(4, 3, padding=1)
    f = net.flatten()
    with pytest.raises(apnn.InvalidArgumentError, match="only a linear layer may read"):
        net.conv(4, 1, input=f)
    with pytest.raises(apnn.InvalidArgumentError, match="only a linear layer may read"):
        net.maxpool(2, input=f)
    with pytest.raises(apnn.UnsupportedError, match="only the global average pool"):
        _add_pool(net, 1, pool=2, size=2)  # AVG 2 x 2


def _add_pool(net, input, pool, size):
    from apnn.core import _check
    out = net._ffi.new("int32_t*")
    _check(net._lib.apnn_network_add_pool(net._handle, input, pool, size, size, 0, out))


def test_float_output_cannot_be_read(net):
    c = net.conv(4, 3, padding=1, output="float")
    with pytest.raises(apnn.InvalidArgumentError, match="outputs float32; only packed outputs can be read"):
        net.conv(4, 3, input=c)


def test_float_output_must_be_last(net):
    a = net.conv(4, 3, padding=1, output="float")
    net.conv(4, 3, padding=1, input=0)
    _weights(net, a)
    _weights(net, 2)
    with pytest.raises(apnn.InvalidArgumentError, match="is not the last layer"):
        net.plan(1)


def test_missing_weights(net):
    a = net.conv(4, 3, padding=1)
    net.linear(3, output="float")
    _weights(net, a)
    with pytest.raises(apnn.InvalidArgumentError, match=r"layer 2 \(linear\) has no weights; call "
                                                        r"apnn_network_set_weights"):
        net(np.zeros((1, 8, 8, 3), np.uint8))


def test_virtual_layer_last_or_unread(net):
    a = net.conv(4, 3, padding=1)
    net.avgpool()
    _weights(net, a)
    with pytest.raises(apnn.InvalidArgumentError, match="is the last layer"):
        net.plan(1)


def test_linear_over_large_input_is_unsupported(host_ctx):
    net = apnn.Network((20, 20, 3), context=host_ctx)
    with pytest.raises(apnn.UnsupportedError, match="H and W must be at most 15: pool first"):
        net.linear(10)


def test_int32_output_takes_no_epilogue(net):
    with pytest.raises(apnn.InvalidArgumentError, match="raw accumulation"):
        net.conv(4, 3, output="int32", activation="relu")


def test_bad_weights(net):
    a = net.conv(4, 3, padding=1, w_bit=2)
    with pytest.raises(apnn.InvalidArgumentError, match=r"needs \(4, 3, 3, 3\) weights"):
        net.set_weights(a, codes=np.zeros((4, 3, 3, 2), np.int8))
    with pytest.raises(apnn.InvalidArgumentError, match="weight code 2 at .* outside -2..1"):
        net.set_weights(a, codes=np.full((4, 3, 3, 3), 2, np.int8))
    with pytest.raises(apnn.InvalidArgumentError, match="weight_scale"):
        net.set_weights(a, weights=np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(apnn.InvalidArgumentError, match="scale has 3 entries"):
        net.set_weights(a, codes=np.zeros((4, 3, 3, 3), np.int8), scale=np.ones(3))
    with pytest.raises(apnn.InvalidArgumentError, match="has no weights"):
        net.set_weights(0, codes=np.zeros((1,), np.int8))


def test_bad_ids_and_inputs(net):
    with pytest.raises(apnn.InvalidArgumentError, match="input 7 is not a layer id"):
        net.conv(4, 3, input=7)
    a = net.conv(4, 3, padding=1)
    _weights(net, a)
    with pytest.raises(apnn.InvalidArgumentError, match="input images are"):
        net(np.zeros((1, 8, 8, 2), np.uint8))
    with pytest.raises(apnn.InvalidArgumentError, match="batch must be"):
        net.plan(0)
    with pytest.raises(apnn.InvalidArgumentError, match="not planned"):
        from apnn.core import _check
        _check(net._lib.apnn_network_run(net._handle, net._ffi.NULL, 1, net._ffi.NULL))


def test_c_api_null_handles():
    from apnn import _ffi
    ffi, lib = _ffi.load()
    assert lib.apnn_network_plan(ffi.NULL, 1) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert "network is NULL" in ffi.string(lib.apnn_last_error()).decode()
    assert lib.apnn_network_destroy(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT


def test_context_outlives_network():
    ctx = apnn.Context("host")
    net = apnn.Network((4, 4, 1), context=ctx)
    with pytest.raises(apnn.InvalidArgumentError, match="destroy them first"):
        from apnn.core import _check
        _check(ctx._lib.apnn_context_destroy(ctx._handle))
    del net
