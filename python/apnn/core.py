"""Contexts, packed matrices and device buffers: thin wrappers over the C API handles."""
import numpy as np

from . import _ffi
from .errors import InvalidArgumentError, InvalidTypeError, error_for

ENCODINGS = {"unsigned": 0, "signed": 1, "binary": 2}
BACKENDS = {"auto": 0, "cuda": 1, "host": 2}
_BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}
_CODE_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2}


def _check(status):
    if status != 0:
        ffi, lib = _ffi.load()
        name = ffi.string(lib.apnn_status_string(status)).decode()
        raise error_for(name, ffi.string(lib.apnn_last_error()).decode())


def version():
    ffi, lib = _ffi.load()
    return ffi.string(lib.apnn_version()).decode()


def cuda_device_count():
    ffi, lib = _ffi.load()
    out = ffi.new("int32_t*")
    _check(lib.apnn_cuda_device_count(out))
    return int(out[0])


_C_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1), "size": (0, 2**64 - 1)}


def c_int(value, name, kind="int32"):
    """An integer argument for the C API: an int (not a bool, not a float with a fraction, which
    would be truncated) inside the C type's range, else an apnn error rather than cffi's."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError(f"{name} must be an integer, got {value!r}")
    lo, hi = _C_RANGES[kind]
    if not lo <= int(value) <= hi:
        raise InvalidArgumentError(f"{name} = {int(value)} is outside the range of the C API's {kind} "
                                   f"({lo}..{hi})")
    return int(value)


def _encoding(name):
    if name not in ENCODINGS:
        raise InvalidArgumentError(f"encoding must be one of {sorted(ENCODINGS)}, got {name!r}")
    return ENCODINGS[name]


def as_codes(codes, name="codes"):
    """A 2-D C-contiguous int8/uint8/int32 array of the given integer codes."""
    arr = np.asarray(codes)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidTypeError(f"{name} must be an integer array of codes, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D (rows x K), got shape {arr.shape}")
    if arr.dtype not in _CODE_DTYPES:
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise InvalidArgumentError(f"{name} has values outside int32")
        arr = arr.astype(np.int32)
    return np.ascontiguousarray(arr)


class Context:
    """A libapnn context on one backend: 'auto' (CUDA if a GPU is usable, else host), 'cuda', 'host'."""

    def __init__(self, backend="auto", **options):
        """options: kernel choices to set at once (see set_options)."""
        if backend not in BACKENDS:
            raise InvalidArgumentError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        self._ffi, self._lib = _ffi.load()
        handle = self._ffi.new("apnn_context_t*")
        _check(self._lib.apnn_context_create(BACKENDS[backend], handle))
        self._handle = handle[0]
        info = self._ffi.new("apnn_context_info_t*")
        _check(self._lib.apnn_context_info(self._handle, info))
        self.backend = _BACKEND_NAMES[info.backend]
        self.device_name = self._ffi.string(info.device_name).decode()
        self.compute_capability = int(info.compute_capability)
        self.multiprocessors = int(info.multiprocessors)
        if options:
            self.set_options(**options)

    @property
    def options(self):
        """The context's kernel choices (apnn.h, apnn_options_t) as a dict: "auto" where the
        planners decide, "legacy" for conv_tiles' cluster-free kernel, else the integer."""
        raw = self._ffi.new("apnn_options_t*")
        _check(self._lib.apnn_context_get_options(self._handle, raw))
        names = {int(self._lib.APNN_OPTION_AUTO): "auto", int(self._lib.APNN_CONV_TILES_LEGACY): "legacy"}
        return {name: names.get(int(getattr(raw, name)), int(getattr(raw, name)))
                for name, _ in self._ffi.typeof("apnn_options_t").fields}

    def set_options(self, **changes):
        """Changes some kernel choices, keeping the others: e.g. set_options(conv_tiles=3,
        conv_halo=0, network_unpadded=False). Values: integers, True / False for 1 / 0, "auto",
        and "legacy" for conv_tiles. Results never change, only which kernels compute them;
        networks take the options of their context when they are created."""
        raw = self._ffi.new("apnn_options_t*")
        _check(self._lib.apnn_context_get_options(self._handle, raw))
        fields = dict(self._ffi.typeof("apnn_options_t").fields)
        words = {"auto": int(self._lib.APNN_OPTION_AUTO), "legacy": int(self._lib.APNN_CONV_TILES_LEGACY)}
        for name, value in changes.items():
            if name not in fields:
                raise InvalidArgumentError(f"unknown option {name!r}; the options are {sorted(fields)}")
            if isinstance(value, str):
                if value not in words or (value == "legacy" and name != "conv_tiles"):
                    raise InvalidArgumentError(f"{name} = {value!r}: a string must be 'auto'"
                                               + (" or 'legacy'" if name == "conv_tiles" else ""))
                value = words[value]
            elif isinstance(value, (bool, np.bool_)):
                value = int(value)
            setattr(raw, name, c_int(value, name, "int64" if fields[name].type.cname == "int64_t" else "int32"))
        _check(self._lib.apnn_context_set_options(self._handle, raw))

    def __repr__(self):
        return f"Context(backend={self.backend!r}, device={self.device_name!r})"

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._lib.apnn_context_destroy(handle)
            self._handle = None

    def synchronize(self):
        _check(self._lib.apnn_context_synchronize(self._handle))

    def _quant(self, bits, encoding, zero_point):
        q = self._ffi.new("apnn_quant_t*")
        q.bits = c_int(bits, "bits")
        q.encoding = _encoding(encoding)
        q.zero_point = c_int(zero_point, "zero_point")
        return q

    def pack(self, codes, bits, encoding="unsigned", zero_point=0):
        """Packs a 2-D array of integer codes (rows x K) into bit-planes on this context."""
        arr = as_codes(codes)
        quant = self._quant(bits, encoding, zero_point)
        out = self._ffi.new("apnn_packed_t*")
        _check(self._lib.apnn_pack(self._handle, self._ffi.cast("void*", arr.ctypes.data), _CODE_DTYPES[arr.dtype],
                                   arr.shape[0], arr.shape[1], quant, out))
        return PackedMatrix(self, out[0])

    def pack_buffer(self, buffer, dtype, rows, cols, bits, encoding="unsigned", zero_point=0):
        """Packs codes already in a Buffer of this context (no host round trip)."""
        dt = np.dtype(dtype)
        if dt not in _CODE_DTYPES:
            raise InvalidTypeError(f"codes must be int8, uint8 or int32, got {dt}")
        quant = self._quant(bits, encoding, zero_point)
        out = self._ffi.new("apnn_packed_t*")
        _check(self._lib.apnn_pack_buffer(self._handle, buffer._handle, _CODE_DTYPES[dt], c_int(rows, "rows", "int64"),
                                          c_int(cols, "cols", "int64"), quant, out))
        return PackedMatrix(self, out[0])

    @property
    def gemm_configs(self):
        """Number of CUDA GEMM tile configurations set_gemm_override accepts."""
        return int(self._lib.APNN_GEMM_CONFIGS)

    def set_gemm_override(self, config=-1, split_k=0, generic=False, clusters=True):
        """Pins the CUDA GEMM kernel (tile config 0..gemm_configs-1, split_k, generic kernel, split-K
        through clusters or global memory); the defaults restore the automatic choice."""
        flags = (self._lib.APNN_GEMM_FORCE_GENERIC if generic else 0) | (0 if clusters else
                                                                         self._lib.APNN_GEMM_NO_CLUSTER)
        _check(self._lib.apnn_context_set_gemm_override(self._handle, c_int(config, "config"),
                                                        c_int(split_k, "split_k"), flags))

    def quantize_pack(self, values, scale, bits, encoding="unsigned", zero_point=0):
        """Quantizes float values (code = clamp(round_half_even(v / scale) + zero_point)) and packs them."""
        arr = np.asarray(values)
        if not np.issubdtype(arr.dtype, np.floating):
            raise InvalidTypeError(f"values must be a float array, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise InvalidArgumentError(f"values must be 2-D, got shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        quant = self._quant(bits, encoding, zero_point)
        out = self._ffi.new("apnn_packed_t*")
        _check(self._lib.apnn_quantize_pack(self._handle, self._ffi.cast("float*", arr.ctypes.data), arr.shape[0],
                                            arr.shape[1], float(scale), quant, out))
        return PackedMatrix(self, out[0])

    def buffer(self, nbytes):
        out = self._ffi.new("apnn_buffer_t*")
        _check(self._lib.apnn_buffer_create(self._handle, c_int(nbytes, "nbytes", "size"), out))
        return Buffer(self, out[0], int(nbytes))

    def _check_packed(self, *packed):
        for p in packed:
            if not isinstance(p, PackedMatrix):
                raise InvalidTypeError(f"expected a PackedMatrix, got {type(p).__name__}")
            if p.context is not self:
                raise InvalidArgumentError("a PackedMatrix was packed by another context")

    def gemm(self, x, w):
        """Y = (X - zx)(W - zw)^T exactly, int32, for packed X (M x K) and W (N x K)."""
        self._check_packed(x, w)
        y = np.empty((x.rows, w.rows), dtype=np.int32)
        _check(self._lib.apnn_gemm(self._handle, x._handle, w._handle, self._ffi.cast("int32_t*", y.ctypes.data)))
        return y

    def gemm_into(self, x, w, y_buffer):
        """Y into a Buffer of this context, without a copy to the host (asynchronous on CUDA)."""
        self._check_packed(x, w)
        _check(self._lib.apnn_gemm_buffer(self._handle, x._handle, w._handle, y_buffer._handle))

    def gemm_benchmark(self, x, w, y_buffer, warmup=10, iters=100):
        """Median microseconds of one GEMM (CUDA graph replays timed with CUDA events on a GPU)."""
        self._check_packed(x, w)
        us = self._ffi.new("double*")
        _check(self._lib.apnn_gemm_benchmark(self._handle, x._handle, w._handle, y_buffer._handle,
                                             c_int(warmup, "warmup"), c_int(iters, "iters"), us))
        return float(us[0])

    def gemm_kernel_name(self, x, w):
        self._check_packed(x, w)
        buf = self._ffi.new("char[]", 128)
        _check(self._lib.apnn_gemm_kernel_name(self._handle, x._handle, w._handle, buf, 128))
        return self._ffi.string(buf).decode()


class PackedMatrix:
    """Bit-planes of a rows x K code matrix, owned by a Context (layout: apnn.h)."""

    def __init__(self, context, handle):
        self.context = context
        self._handle = handle
        ffi, lib = context._ffi, context._lib
        rows, cols, quant = ffi.new("int64_t*"), ffi.new("int64_t*"), ffi.new("apnn_quant_t*")
        _check(lib.apnn_packed_info(handle, rows, cols, quant))
        self.rows, self.cols = int(rows[0]), int(cols[0])
        self.bits = int(quant.bits)
        self.encoding = {v: k for k, v in ENCODINGS.items()}[int(quant.encoding)]
        self.zero_point = int(quant.zero_point)

    @property
    def shape(self):
        return (self.rows, self.cols)

    def __repr__(self):
        return (f"PackedMatrix(shape={self.shape}, bits={self.bits}, encoding={self.encoding!r}, "
                f"zero_point={self.zero_point})")

    def planes(self):
        """The packed words as an array (bits, rows_padded, words) of uint32."""
        rows_padded = -(-self.rows // 128) * 128
        words = -(-self.cols // 256) * 256 // 32
        out = np.empty((self.bits, rows_padded, words), dtype=np.uint32)
        ffi, lib = self.context._ffi, self.context._lib
        _check(lib.apnn_packed_read_planes(self._handle, ffi.cast("uint32_t*", out.ctypes.data), out.size))
        return out

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self.context._lib.apnn_packed_destroy(handle)
            self._handle = None


class Buffer:
    """Memory of a context's backend (device memory on CUDA)."""

    def __init__(self, context, handle, nbytes):
        self.context, self._handle, self.nbytes = context, handle, nbytes

    def write(self, array):
        arr = np.ascontiguousarray(array)
        if arr.nbytes > self.nbytes:
            raise InvalidArgumentError(f"array of {arr.nbytes} bytes does not fit a buffer of {self.nbytes}")
        _check(self.context._lib.apnn_buffer_write(self._handle, self.context._ffi.cast("void*", arr.ctypes.data),
                                                   arr.nbytes))

    def read(self, shape, dtype):
        out = np.empty(shape, dtype=dtype)
        _check(self.context._lib.apnn_buffer_read(self._handle, self.context._ffi.cast("void*", out.ctypes.data),
                                                  out.nbytes))
        return out

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self.context._lib.apnn_buffer_destroy(handle)
            self._handle = None


_default_contexts = {}


def default_context(backend="auto"):
    """One shared Context per backend name, created on first use."""
    if backend not in _default_contexts:
        _default_contexts[backend] = Context(backend)
    return _default_contexts[backend]
