"""apnn: arbitrary-precision quantized neural networks on NVIDIA binary tensor cores.

    import apnn
    y = apnn.gemm(x_codes, w_codes, x_bit=2, w_bit=1)     # exact int32, numpy in/out
    ctx = apnn.Context("cuda")                            # or "host", "auto"
"""
from . import reference
from .core import Buffer, Context, PackedMatrix, cuda_device_count, default_context, version
from .errors import (ApnnError, CudaError, InvalidArgumentError, InvalidTypeError, NoDeviceError, OutOfMemoryError,
                     UnsupportedError)
from .gemm import gemm

__all__ = [
    "ApnnError", "Buffer", "Context", "CudaError", "InvalidArgumentError", "InvalidTypeError", "NoDeviceError",
    "OutOfMemoryError", "PackedMatrix", "UnsupportedError", "cuda_device_count", "default_context", "gemm",
    "reference", "version",
]
