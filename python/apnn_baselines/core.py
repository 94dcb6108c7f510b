"""The baselines from Python: numpy codes in, numpy results out (see baselines.h)."""
import numpy as np

from . import _ffi, models, reference
from .errors import InvalidArgumentError, error_for

KINDS = {"int1-xor": 0, "int1-and": 1, "int4": 2}
PRECISIONS = {"fp32": 0, "fp16": 1, "int8": 2, "bnn": 3}
LAYER_TYPES = {"conv": 0, "fc": 1, "maxpool": 2, "avgpool": 3}


def _check(status):
    if status != 0:
        ffi, lib = _ffi.load()
        name = ffi.string(lib.apnnb_status_string(status)).decode()
        raise error_for(name, ffi.string(lib.apnnb_last_error()).decode())


def version():
    ffi, lib = _ffi.load()
    return ffi.string(lib.apnnb_version()).decode()


def cuda_device_count():
    ffi, lib = _ffi.load()
    out = ffi.new("int32_t*")
    _check(lib.apnnb_cuda_device_count(out))
    return int(out[0])


def device_name():
    ffi, lib = _ffi.load()
    buf = ffi.new("char[]", 256)
    _check(lib.apnnb_device_name(buf, 256))
    return ffi.string(buf).decode()


def compute_capability():
    """(major, minor) of device 0; NoDeviceError without a usable GPU."""
    ffi, lib = _ffi.load()
    major, minor = ffi.new("int32_t*"), ffi.new("int32_t*")
    _check(lib.apnnb_device_compute_capability(major, minor))
    return int(major[0]), int(minor[0])


def xor_popc_supported():
    """Whether the CUTLASS b1 XOR-popc kernels run on device 0: compute capability 8.x only. On 9.0+
    (no native BMMA.XOR on Hopper; CUTLASS 4.2 compiles its XOR mma to assert(0) there) gemm / conv
    with "int1-xor" raise UnsupportedError, and the "bnn" network runs on the AND-popc GEMM."""
    return compute_capability() < (9, 0)


def _kind(kind):
    if kind not in KINDS:
        raise InvalidArgumentError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


def _codes(arr, kind, ndim, name):
    arr = np.asarray(arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgumentError(f"{name} must be an integer array of codes, got dtype {arr.dtype}")
    if arr.ndim != ndim or 0 in arr.shape:
        raise InvalidArgumentError(f"{name} must be a non-empty {ndim}-D array, got shape {arr.shape}")
    lo, hi = (-8, 7) if kind == "int4" else (0, 1)
    if arr.min() < lo or arr.max() > hi:
        raise InvalidArgumentError(f"{name} codes must lie in {lo}..{hi} for {kind}")
    return arr


def _pad_axis(arr, axis, multiple):
    extra = -arr.shape[axis] % multiple
    if not extra:
        return arr
    widths = [(0, 0)] * arr.ndim
    widths[axis] = (0, extra)
    return np.pad(arr, widths)


def _timing(warmup, iters):
    if int(warmup) < 0 or int(iters) < 0:
        raise InvalidArgumentError("warmup and iters must be >= 0")
    return int(warmup), int(iters)


def gemm(kind, a, b, warmup=0, iters=0):
    """C = A B^T (int32, M x N) for codes A (M x K) and B (N x K) on the CUTLASS kernel `kind`
    ("int1-xor": popc(a XOR b), "int1-and": popc(a AND b), "int4": signed products).
    "int1-xor" raises UnsupportedError on compute capability 9.0+ (see xor_popc_supported).
    K is zero-padded to the kernel's alignment and N to a multiple of 4 (neutral for all
    three). With iters > 0 returns (C, median microseconds), else C."""
    k_id = _kind(kind)
    a = _codes(a, kind, 2, "a")
    b = _codes(b, kind, 2, "b")
    if a.shape[1] != b.shape[1]:
        raise InvalidArgumentError(f"a and b need the same K, got {a.shape[1]} and {b.shape[1]}")
    warmup, iters = _timing(warmup, iters)
    m, n = a.shape[0], b.shape[0]
    k_align = 32 if kind == "int4" else 128
    ap = reference.pack(_pad_axis(a, 1, k_align), kind)
    bp = reference.pack(_pad_axis(_pad_axis(b, 1, k_align), 0, 4), kind)
    k = ap.shape[1] * (2 if kind == "int4" else 8)
    n_pad = bp.shape[0]
    c = np.empty((m, n_pad), dtype=np.int32)
    ffi, lib = _ffi.load()
    us = ffi.new("double*")
    _check(lib.apnnb_gemm(k_id, m, n_pad, k, ffi.from_buffer(ap), ffi.from_buffer(bp),
                          ffi.cast("int32_t*", c.ctypes.data), warmup, iters, us if iters else ffi.NULL))
    c = np.ascontiguousarray(c[:, :n])
    return (c, float(us[0])) if iters else c


def conv(kind, x, w, stride=1, pad=0, warmup=0, iters=0):
    """Implicit-GEMM convolution y (N x P x Q x O, int32) of codes x (N x H x W x C) and w
    (O x R x R x C) on the CUTLASS kernel `kind`; padding pixels read code 0. Channels are
    zero-padded to the alignment (neutral) and O to a multiple of 4. With iters > 0 returns
    (y, median microseconds). "int1-xor" raises UnsupportedError on compute capability 9.0+."""
    k_id = _kind(kind)
    x = _codes(x, kind, 4, "x")
    w = _codes(w, kind, 4, "w")
    if w.shape[1] != w.shape[2]:
        raise InvalidArgumentError(f"w must be O x R x R x C (square kernel), got shape {w.shape}")
    if x.shape[3] != w.shape[3]:
        raise InvalidArgumentError(f"x and w need the same channels, got {x.shape[3]} and {w.shape[3]}")
    warmup, iters = _timing(warmup, iters)
    c_align = 32 if kind == "int4" else 128
    xp = reference.pack(_pad_axis(x, 3, c_align), kind)
    wp = reference.pack(_pad_axis(_pad_axis(w, 3, c_align), 0, 4), kind)
    n, h, wd = x.shape[:3]
    o, r = w.shape[0], w.shape[1]
    c = xp.shape[3] * (2 if kind == "int4" else 8)
    o_pad = wp.shape[0]
    if stride < 1 or pad < 0 or h + 2 * pad < r or wd + 2 * pad < r:
        raise InvalidArgumentError("need stride >= 1, pad >= 0 and a kernel that fits the padded input")
    p, q = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - r) // stride + 1
    y = np.empty((n, p, q, o_pad), dtype=np.int32)
    ffi, lib = _ffi.load()
    us = ffi.new("double*")
    _check(lib.apnnb_conv(k_id, n, h, wd, c, o_pad, r, int(stride), int(pad), ffi.from_buffer(xp),
                          ffi.from_buffer(wp), ffi.cast("int32_t*", y.ctypes.data), warmup, iters,
                          us if iters else ffi.NULL))
    y = np.ascontiguousarray(y[..., :o])
    return (y, float(us[0])) if iters else y


class Net:
    """A network (a layer list as in models.py) on device 0 in one precision: "fp32", "fp16",
    "int8" (CUTLASS GEMMs) or "bnn" (binarized, TCBNN style: CUTLASS b1 XOR-popc GEMM on sm_8x,
    AND-popc GEMM plus an exact popcount identity on sm_90+, same results). Weights start random (seeded);
    set_params replaces them. `scales` maps layer index -> INT8 requantization scale."""

    def __init__(self, layers, precision="fp16", batch=1, input_shape=models.INPUT_SHAPE, seed=0, scales=None):
        if precision not in PRECISIONS:
            raise InvalidArgumentError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if isinstance(layers, str):
            layers = models.get(layers)
        self.layers = [dict(layer) for layer in layers]
        self.precision = precision
        self.batch = int(batch)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.scales = dict(scales or {})
        self._ffi, self._lib = _ffi.load()
        descs = self._ffi.new("apnnb_layer_t[]", max(1, len(self.layers)))
        for i, layer in enumerate(self.layers):
            if layer["type"] not in LAYER_TYPES:
                raise InvalidArgumentError(f"layer {i}: unknown type {layer['type']!r}")
            d = descs[i]
            d.type = LAYER_TYPES[layer["type"]]
            d.out_channels = int(layer.get("out_channels", 0))
            d.kernel = int(layer.get("kernel", 0))
            d.stride = int(layer.get("stride", 1))
            d.pad = int(layer.get("pad", 0))
            d.relu = int(bool(layer.get("relu", False)))
            d.input = int(layer.get("input", -1))
            d.residual = int(layer.get("residual", -1))
            d.scale = float(self.scales.get(i, 0.0))
        handle = self._ffi.new("apnnb_net_t*")
        h, w, c = self.input_shape
        _check(self._lib.apnnb_net_create(PRECISIONS[precision], self.batch, h, w, c, descs, len(self.layers),
                                          int(seed), handle))
        self._handle = handle[0]

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._lib.apnnb_net_destroy(handle)
            self._handle = None

    def layer_shape(self, layer):
        h, w, c = (self._ffi.new("int32_t*") for _ in range(3))
        _check(self._lib.apnnb_net_layer_shape(self._handle, int(layer), h, w, c))
        return int(h[0]), int(w[0]), int(c[0])

    @property
    def output_shape(self):
        return (self.batch,) + self.layer_shape(len(self.layers) - 1)

    def set_params(self, layer, weights, bias=None):
        wts = np.ascontiguousarray(weights, dtype=np.float32)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        _check(self._lib.apnnb_net_set_params(
            self._handle, int(layer), self._ffi.cast("float*", wts.ctypes.data), wts.size,
            self._ffi.NULL if b is None else self._ffi.cast("float*", b.ctypes.data), 0 if b is None else b.size))

    def run(self, x, warmup=0, iters=0):
        """Output of the last layer (float32, batch x H x W x C) for input x (batch x H x W x C);
        with iters > 0 returns (output, median microseconds of one forward pass)."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if arr.shape != (self.batch,) + self.input_shape:
            raise InvalidArgumentError(f"input must have shape {(self.batch,) + self.input_shape}, got {arr.shape}")
        warmup, iters = _timing(warmup, iters)
        out = np.empty(self.output_shape, dtype=np.float32)
        us = self._ffi.new("double*")
        _check(self._lib.apnnb_net_run(self._handle, self._ffi.cast("float*", arr.ctypes.data), arr.size,
                                       self._ffi.cast("float*", out.ctypes.data), out.size, warmup, iters,
                                       us if iters else self._ffi.NULL))
        return (out, float(us[0])) if iters else out
