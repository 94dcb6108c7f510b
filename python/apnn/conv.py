"""Convolution on packed NHWC tensors with fused layer epilogues (apnn.h, "Convolution and
fused epilogues").

    ctx = apnn.Context("host")
    x = apnn.pack_nhwc(ctx, x_codes, bits=2)                  # N, H, W, C codes
    w = apnn.pack_conv_weights(ctx, w_codes, bits=1, encoding="binary")   # O, KH, KW, C
    y = apnn.conv2d_packed(ctx, x, w, stride=1, padding=1)    # int32 N, OH, OW, O
    ep = apnn.Epilogue(ctx, O, scale=s, bias=b, activation="relu", pool="max")
    out = apnn.empty_nhwc(ctx, shape, bits=2)                 # the next layer's input
    apnn.conv2d_packed(ctx, x, w, padding=1, epilogue=ep, out=out)
"""
import numpy as np

from .core import ENCODINGS, PackedMatrix, _check, _encoding, c_int, default_context
from .errors import InvalidArgumentError, InvalidTypeError

_CODE_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2}
ACTIVATIONS = {"none": 0, "relu": 1, "clip": 2}
POOLS = {"none": 0, "max": 1, "avg": 2}


def _codes4(codes, name):
    arr = np.asarray(codes)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidTypeError(f"{name} must be an integer array of codes, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise InvalidArgumentError(f"{name} must be 4-D, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidArgumentError(f"{name} is empty: shape {arr.shape}")
    if arr.dtype not in _CODE_DTYPES:
        if arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max:
            raise InvalidArgumentError(f"{name} has values outside int32")
        arr = arr.astype(np.int32)
    return np.ascontiguousarray(arr)


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return c_int(v, name), c_int(v, name)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    return c_int(a, name), c_int(b, name)


class PackedTensor(PackedMatrix):
    """A packed N x H x W x C tensor of codes (rows = pixels, channels along the bit axis)."""

    def __init__(self, context, handle):
        super().__init__(context, handle)
        ffi, lib = context._ffi, context._lib
        shape = ffi.new("int64_t[4]")
        _check(lib.apnn_packed_tensor_shape(handle, shape))
        self.tensor_shape = tuple(int(s) for s in shape)

    def __repr__(self):
        return (f"PackedTensor(shape={self.tensor_shape}, bits={self.bits}, encoding={self.encoding!r}, "
                f"zero_point={self.zero_point})")

    def codes(self):
        """The codes, decoded from the planes (int32, N x H x W x C)."""
        n, h, w, c = self.tensor_shape
        planes = self.planes()[:, :n * h * w, :]
        bits = np.unpackbits(planes.view(np.uint8), axis=-1, bitorder="little")[..., :c].astype(np.int32)
        if self.encoding == "binary":
            return (2 * bits[0] - 1).reshape(n, h, w, c)
        value = sum(bits[i] << i for i in range(self.bits))
        if self.encoding == "signed":
            value = value - (bits[self.bits - 1] << self.bits)
        return value.reshape(n, h, w, c).astype(np.int32)


def pack_nhwc(ctx, codes, bits, encoding="unsigned", zero_point=0):
    """Packs N x H x W x C integer codes as a PackedTensor of context `ctx`."""
    arr = _codes4(codes, "codes")
    quant = ctx._quant(bits, encoding, zero_point)
    out = ctx._ffi.new("apnn_packed_t*")
    _check(ctx._lib.apnn_pack_nhwc(ctx._handle, ctx._ffi.cast("void*", arr.ctypes.data), _CODE_DTYPES[arr.dtype],
                                   *arr.shape, quant, out))
    return PackedTensor(ctx, out[0])


def empty_nhwc(ctx, shape, bits, encoding="unsigned", zero_point=0):
    """A PackedTensor of the given shape with all bits 0, e.g. the output of a fused epilogue."""
    if len(shape) != 4:
        raise InvalidArgumentError(f"shape must have 4 entries (N, H, W, C), got {shape!r}")
    quant = ctx._quant(bits, encoding, zero_point)
    out = ctx._ffi.new("apnn_packed_t*")
    _check(ctx._lib.apnn_packed_create_nhwc(ctx._handle, *[int(s) for s in shape], quant, out))
    return PackedTensor(ctx, out[0])


class ConvWeights:
    """Packed O x KH x KW x C convolution weights, owned by a Context."""

    def __init__(self, context, handle):
        self.context, self._handle = context, handle
        ffi, lib = context._ffi, context._lib
        shape, quant = ffi.new("int64_t[4]"), ffi.new("apnn_quant_t*")
        _check(lib.apnn_conv_weights_info(handle, shape, quant))
        self.shape = tuple(int(s) for s in shape)
        self.bits = int(quant.bits)
        self.encoding = {v: k for k, v in ENCODINGS.items()}[int(quant.encoding)]
        self.zero_point = int(quant.zero_point)

    def __repr__(self):
        return f"ConvWeights(shape={self.shape}, bits={self.bits}, encoding={self.encoding!r})"

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self.context._lib.apnn_conv_weights_destroy(handle)
            self._handle = None


def pack_conv_weights(ctx, codes, bits, encoding="unsigned", zero_point=0):
    """Packs O x KH x KW x C integer weight codes."""
    arr = _codes4(codes, "codes")
    quant = ctx._quant(bits, encoding, zero_point)
    out = ctx._ffi.new("apnn_conv_weights_t*")
    _check(ctx._lib.apnn_pack_conv_weights(ctx._handle, ctx._ffi.cast("void*", arr.ctypes.data),
                                           _CODE_DTYPES[arr.dtype], *arr.shape, quant, out))
    return ConvWeights(ctx, out[0])


class Epilogue:
    """A fused epilogue for `channels` output channels (the rule: apnn.h / reference.conv_epilogue).

    scale, bias: per-channel float32 (folded batch-norm); activation: 'none' | 'relu' | 'clip'
    (with clip=(lo, hi)); pool: 'none' | 'max' | 'avg' with pool_size 2 or 3 and pool_stride
    (default pool_size); out_scale: the scale of packed output codes.
    """

    def __init__(self, ctx, channels, *, scale=None, bias=None, residual_scale=1.0, activation="none",
                 clip=(0.0, 0.0), pool="none", pool_size=2, pool_stride=None, out_scale=1.0):
        if activation not in ACTIVATIONS:
            raise InvalidArgumentError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if pool not in POOLS:
            raise InvalidArgumentError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
        self.context = ctx
        ffi, lib = ctx._ffi, ctx._lib
        desc = ffi.new("apnn_epilogue_desc_t*")
        desc.channels = c_int(channels, "channels", "int64")
        keep = []
        for field, values in (("scale", scale), ("bias", bias)):
            if values is not None:
                arr = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
                if arr.size != channels:
                    raise InvalidArgumentError(f"{field} has {arr.size} entries, expected {channels}")
                keep.append(arr)
                setattr(desc, field, ffi.cast("float*", arr.ctypes.data))
        desc.residual_scale = float(residual_scale)
        desc.activation = ACTIVATIONS[activation]
        desc.clip_lo, desc.clip_hi = float(clip[0]), float(clip[1])
        desc.pool = POOLS[pool]
        desc.pool_size = c_int(pool_size, "pool_size")
        desc.pool_stride = c_int(pool_size if pool_stride is None else pool_stride, "pool_stride")
        desc.out_scale = float(out_scale)
        out = ffi.new("apnn_epilogue_t*")
        _check(lib.apnn_epilogue_create(ctx._handle, desc, out))
        self._handle = out[0]
        self.channels = int(channels)
        self.pool = pool

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self.context._lib.apnn_epilogue_destroy(handle)
            self._handle = None


def _args(ctx, x, w, stride, padding, epilogue, residual, out, groups=1):
    """The apnn_conv_args_t of a call plus Python objects it refers to (kept alive by the caller)."""
    ffi = ctx._ffi
    if not isinstance(x, PackedTensor):
        raise InvalidTypeError(f"x must be a PackedTensor (apnn.pack_nhwc), got {type(x).__name__}")
    if not isinstance(w, ConvWeights):
        raise InvalidTypeError(f"w must be ConvWeights (apnn.pack_conv_weights), got {type(w).__name__}")
    for obj, name in ((x, "x"), (w, "w"), (epilogue, "epilogue"), (residual, "residual"), (out, "out")):
        if obj is not None and getattr(obj, "context", ctx) is not ctx:
            raise InvalidArgumentError(f"{name} belongs to another context")
    args = ffi.new("apnn_conv_args_t*")
    args.x, args.w = x._handle, w._handle
    args.stride_h, args.stride_w = _pair(stride, "stride")
    args.pad_h, args.pad_w = _pair(padding, "padding")
    args.groups = c_int(groups, "groups")
    keep = []
    if epilogue is not None:
        if not isinstance(epilogue, Epilogue):
            raise InvalidTypeError(f"epilogue must be an Epilogue, got {type(epilogue).__name__}")
        args.epilogue = epilogue._handle
    if isinstance(residual, PackedTensor):
        args.residual = residual._handle
    elif residual is not None:
        r = np.asarray(residual)
        if not np.issubdtype(r.dtype, np.integer):
            raise InvalidTypeError(f"residual must be integers or a PackedTensor, got dtype {r.dtype}")
        r = np.ascontiguousarray(r, dtype=np.int32)
        buf = ctx.buffer(max(r.nbytes, 4))
        buf.write(r)
        keep.append(buf)
        args.residual_int32 = buf._handle
    return args, keep


def _set_output(ctx, args, keep, x, w, stride, padding, epilogue, out, groups=1):
    """Points args at `out` (a PackedTensor) or at a new buffer of the pooled int32 / float32
    output, kept alive in `keep`; returns that buffer and its shape (None, None for `out`)."""
    if out is not None:
        if not isinstance(out, PackedTensor):
            raise InvalidTypeError(f"out must be a PackedTensor, got {type(out).__name__}")
        args.y_packed = out._handle
        return None, None
    _, pooled = output_shape(ctx, x, w, stride=stride, padding=padding, epilogue=epilogue, groups=groups)
    y = ctx.buffer(4 * int(np.prod(pooled)))
    keep.append(y)
    args.y = y._handle
    return y, pooled


def output_shape(ctx, x, w, *, stride=1, padding=0, epilogue=None, groups=1):
    """((N, OH, OW, O) before pooling, (N, OHp, OWp, O) after it)."""
    args, _ = _args(ctx, x, w, stride, padding, epilogue, None, None, groups)
    shape, pooled = ctx._ffi.new("int64_t[4]"), ctx._ffi.new("int64_t[4]")
    _check(ctx._lib.apnn_conv2d_output_shape(ctx._handle, args, shape, pooled))
    return tuple(int(s) for s in shape), tuple(int(s) for s in pooled)


def conv2d_packed(ctx, x, w, *, stride=1, padding=0, epilogue=None, residual=None, out=None, groups=1):
    """Convolution of packed x with packed w on context ctx.

    No epilogue: returns int32 (N, OH, OW, O). With an epilogue: returns float32 (N, OHp, OWp, O),
    or, when `out` is a PackedTensor, writes the re-quantized codes into it and returns it.
    residual: a PackedTensor or an integer array of shape (N, OH, OW, O). groups > 1: a grouped
    convolution (w has C / groups channels; apnn.h, "Grouped convolution").
    """
    args, keep = _args(ctx, x, w, stride, padding, epilogue, residual, out, groups)
    y, pooled = _set_output(ctx, args, keep, x, w, stride, padding, epilogue, out, groups)
    _check(ctx._lib.apnn_conv2d(ctx._handle, args))
    if out is not None:
        return out
    return y.read(pooled, np.float32 if epilogue is not None else np.int32)


def conv2d_benchmark(ctx, x, w, *, stride=1, padding=0, epilogue=None, residual=None, out=None, warmup=10,
                     iters=100, groups=1):
    """Median microseconds of one conv2d_packed call (CUDA graph replays on a GPU)."""
    args, keep = _args(ctx, x, w, stride, padding, epilogue, residual, out, groups)
    _set_output(ctx, args, keep, x, w, stride, padding, epilogue, out, groups)
    us = ctx._ffi.new("double*")
    _check(ctx._lib.apnn_conv2d_benchmark(ctx._handle, args, c_int(warmup, "warmup"), c_int(iters, "iters"), us))
    return float(us[0])


def conv2d_kernel_name(ctx, x, w, *, stride=1, padding=0, epilogue=None, residual=None, out=None, groups=1):
    args, keep = _args(ctx, x, w, stride, padding, epilogue, residual, out, groups)
    _set_output(ctx, args, keep, x, w, stride, padding, epilogue, out, groups)
    buf = ctx._ffi.new("char[]", 128)
    _check(ctx._lib.apnn_conv2d_kernel_name(ctx._handle, args, buf, 128))
    return ctx._ffi.string(buf).decode()


def set_conv_override(ctx, split_k=0, fuse=True):
    """Pins the CUDA convolution's split-K and epilogue fusion (ignored on the host)."""
    _check(ctx._lib.apnn_context_set_conv_override(ctx._handle, c_int(split_k, "split_k"), 1 if fuse else 0))


def conv2d(x_codes, w_codes, *, x_bit, w_bit, x_encoding="unsigned", w_encoding="unsigned", x_zero_point=0,
           w_zero_point=0, stride=1, padding=0, groups=1, backend="auto", context=None):
    """Exact int32 convolution of NHWC codes x (N,H,W,C) with OHWC codes w (O,KH,KW,C/groups).

    Padding pixels are the real value 0 for every encoding and zero point.
    """
    ctx = context or default_context(backend)
    x = pack_nhwc(ctx, x_codes, x_bit, x_encoding, x_zero_point)
    w = pack_conv_weights(ctx, w_codes, w_bit, w_encoding, w_zero_point)
    return conv2d_packed(ctx, x, w, stride=stride, padding=padding, groups=groups)
