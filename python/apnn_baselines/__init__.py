"""apnn_baselines: CUTLASS INT1 / INT4 GEMM and convolution, and whole networks in FP32, FP16,
INT8 (CUTLASS) and binarized (TCBNN style), behind libapnn_baselines.so (baselines.h)."""
from . import models, reference
from .core import (KINDS, PRECISIONS, Net, compute_capability, conv, cuda_device_count, device_name, gemm, version,
                   xor_popc_supported)
from .errors import (BaselineError, CudaError, InvalidArgumentError, NoDeviceError, OutOfMemoryError,
                     UnsupportedError)

__all__ = ["KINDS", "PRECISIONS", "Net", "compute_capability", "conv", "cuda_device_count", "device_name", "gemm",
           "version", "xor_popc_supported", "models",
           "reference", "BaselineError", "CudaError", "InvalidArgumentError", "NoDeviceError", "OutOfMemoryError",
           "UnsupportedError"]
