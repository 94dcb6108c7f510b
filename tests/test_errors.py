"""Bad input gets a clear error (status + message) and a Python exception, never a crash."""
import numpy as np
import pytest

import apnn
from apnn import _ffi
from conftest import HAS_GPU


def codes(shape, value=1, dtype=np.int8):
    return np.full(shape, value, dtype=dtype)


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_unsupported_bits(ctx, bits):
    with pytest.raises(apnn.InvalidArgumentError, match="bits must be in 1..8"):
        ctx.pack(codes((2, 3)), bits)


def test_binary_needs_one_bit(ctx):
    with pytest.raises(apnn.InvalidArgumentError, match="binary"):
        ctx.pack(codes((2, 3)), 2, "binary")


@pytest.mark.parametrize("bits,encoding,bad", [(1, "unsigned", 2), (2, "unsigned", -1), (3, "signed", 4),
                                               (3, "signed", -5), (1, "binary", 0), (8, "unsigned", 256)])
def test_codes_out_of_range_name_the_position(ctx, bits, encoding, bad):
    c = np.zeros((3, 40), dtype=np.int32) + (1 if encoding == "binary" else 0)
    c[2, 17] = bad
    with pytest.raises(apnn.InvalidArgumentError, match=r"code -?\d+ at \(2, 17\) is outside"):
        ctx.pack(c, bits, encoding)


@pytest.mark.parametrize("bad", [np.ones((2, 3), np.float32), np.ones((2, 3), bool)])
def test_wrong_dtype(ctx, bad):
    with pytest.raises(apnn.InvalidTypeError, match="integer array"):
        ctx.pack(bad, 2)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), (0, 5), (5, 0)])
def test_wrong_shape(ctx, shape):
    with pytest.raises(apnn.InvalidArgumentError):
        ctx.pack(np.zeros(shape, np.int8), 2)


def test_k_mismatch(ctx):
    x, w = ctx.pack(codes((2, 30)), 2), ctx.pack(codes((3, 31)), 1)
    with pytest.raises(apnn.InvalidArgumentError, match="K = 30"):
        ctx.gemm(x, w)


def test_unknown_encoding_and_backend(ctx):
    with pytest.raises(apnn.InvalidArgumentError, match="encoding"):
        ctx.pack(codes((2, 3)), 2, "ternary")
    with pytest.raises(apnn.InvalidArgumentError, match="backend"):
        apnn.Context("tpu")


def test_overflow_is_refused(ctx):
    x, w = ctx.pack(codes((1, 40000), 255, np.uint8), 8), ctx.pack(codes((1, 40000), 255, np.uint8), 8)
    with pytest.raises(apnn.UnsupportedError, match="overflow"):
        ctx.gemm(x, w)


def test_objects_of_another_context(ctx):
    other = apnn.Context("host")
    x = other.pack(codes((2, 3)), 2)
    with pytest.raises(apnn.InvalidArgumentError, match="another context"):
        ctx.gemm(x, x)


def test_null_pointers_through_the_c_api():
    ffi, lib = _ffi.load()
    assert lib.apnn_context_create(2, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert "NULL" in ffi.string(lib.apnn_last_error()).decode()
    assert lib.apnn_gemm(ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_pack(ffi.NULL, ffi.NULL, 0, 1, 1, ffi.NULL, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_packed_destroy(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_context_destroy(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_buffer_write(ffi.NULL, ffi.NULL, 4) == lib.APNN_STATUS_INVALID_ARGUMENT


def test_context_with_live_objects_cannot_be_destroyed():
    ffi, lib = _ffi.load()
    handle = ffi.new("apnn_context_t*")
    assert lib.apnn_context_create(lib.APNN_BACKEND_HOST, handle) == 0
    buf = ffi.new("apnn_buffer_t*")
    assert lib.apnn_buffer_create(handle[0], 16, buf) == 0
    assert lib.apnn_context_destroy(handle[0]) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert "destroy them first" in ffi.string(lib.apnn_last_error()).decode()
    assert lib.apnn_buffer_destroy(buf[0]) == 0
    assert lib.apnn_context_destroy(handle[0]) == 0


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(apnn.NoDeviceError, match="needs a GPU"):
        apnn.Context("cuda")
    assert apnn.Context("auto").backend == "host"


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")
def test_auto_picks_cuda_on_a_gpu():
    ctx = apnn.Context("auto")
    assert ctx.backend == "cuda" and ctx.compute_capability >= 80


def test_library_functions_are_bound_at_load():
    # A destructor run by the garbage collector inside cffi's type parser (which holds the FFI's
    # lock) must not resolve its destroy function then: it would wait on that lock forever (seen
    # as a hang while importing models). Every declared name is looked up when the library loads.
    from apnn._ffi import load
    ffi, lib = load()
    names = dir(lib)
    assert "apnn_network_destroy" in names
    assert [n for n in names if n not in vars(lib)] == []


# The mistaken calls a new user made (issue: reliability): each gets an apnn error, none a silent
# truncation or cffi's OverflowError.
MISTAKES = [
    ("gemm with a fractional zero point", apnn.InvalidTypeError,
     lambda ctx: apnn.gemm(codes((2, 8)), codes((3, 8)), x_bit=2, w_bit=2, x_zero_point=0.5, context=ctx)),
    ("network input zero point 1.7", apnn.InvalidTypeError,
     lambda ctx: apnn.Network((4, 4, 3), input_zero_point=1.7, context=ctx)),
    ("a buffer of -1 bytes", apnn.InvalidArgumentError, lambda ctx: ctx.buffer(-1)),
    ("bits 2**40", apnn.InvalidArgumentError, lambda ctx: ctx.pack(codes((2, 3)), 2**40)),
    ("zero point 2**40", apnn.InvalidArgumentError, lambda ctx: ctx.pack(codes((2, 3)), 2, zero_point=2**40)),
    ("conv stride 2**40", apnn.InvalidArgumentError,
     lambda ctx: apnn.conv2d(codes((1, 4, 4, 3)), codes((2, 3, 3, 3)), x_bit=2, w_bit=2, stride=2**40, context=ctx)),
    ("conv padding 2**40", apnn.InvalidArgumentError,
     lambda ctx: apnn.conv2d(codes((1, 4, 4, 3)), codes((2, 3, 3, 3)), x_bit=2, w_bit=2, padding=(1, 2**40),
                             context=ctx)),
    ("an epilogue of 2**70 channels", apnn.InvalidArgumentError, lambda ctx: apnn.Epilogue(ctx, 2**70)),
    ("gemm override 2**40", apnn.InvalidArgumentError, lambda ctx: ctx.set_gemm_override(2**40)),
    ("a conv of 2**70 outputs", apnn.InvalidArgumentError,
     lambda ctx: apnn.Network((4, 4, 3), context=ctx).conv(2**70, 3)),
    ("a layer id of 2**40", apnn.InvalidArgumentError,
     lambda ctx: apnn.Network((4, 4, 3), context=ctx).conv(2, 3, input=2**40)),
    ("a float batch", apnn.InvalidTypeError, lambda ctx: apnn.Network((4, 4, 3), context=ctx).plan(2.5)),
]


@pytest.mark.parametrize("what,error,call", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistaken_calls_get_apnn_errors(host_ctx, what, error, call):
    with pytest.raises(error):
        call(host_ctx)


def test_one_rounding_rule_for_quantize_pack_and_networks(host_ctx):
    # The float32 quotient decides ties (apnn.h, apnn_quantize_pack): the same codes as a network's
    # float input and float weights, and the oracle's reference.quantize. Values near k + 0.5
    # steps of 0.3 put the float32 and the exact quotient on different sides of many ties.
    rng = np.random.default_rng(7)
    k = rng.integers(-20, 20, 4000)
    values = ((k + 0.5) * np.float32(0.3)).astype(np.float32).reshape(40, 100)
    values[0, :8] = [np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 0.15, -0.15]
    for bits, enc, zp in [(4, "signed", 0), (4, "unsigned", 3), (8, "signed", -5), (1, "binary", 0)]:
        want = apnn.reference.quantize(values, 0.3, bits, enc, zp)
        packed = host_ctx.quantize_pack(values, 0.3, bits, enc, zp)
        direct = host_ctx.pack(want, bits, enc, zp)
        np.testing.assert_array_equal(packed.planes(), direct.planes(), f"{bits}-bit {enc} zp {zp}")
    # A network's float input takes the same codes.
    net = apnn.Network((1, 100, 1), input_bits=4, input_encoding="signed", input_scale=0.3, context=host_ctx)
    conv = net.conv(1, 1, w_bit=1, w_encoding="unsigned", output="int32")
    net.set_weights(conv, codes=np.ones((1, 1, 1, 1), np.int32))
    x = values[1:5].reshape(4, 1, 100, 1)
    np.testing.assert_array_equal(net(x)[..., 0], apnn.reference.quantize(x, 0.3, 4, "signed")[..., 0])
