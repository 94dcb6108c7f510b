"""apnn: arbitrary-precision quantized neural networks on NVIDIA binary tensor cores.

    import apnn
    y = apnn.gemm(x_codes, w_codes, x_bit=2, w_bit=1)     # exact int32, numpy in/out
    ctx = apnn.Context("cuda")                            # or "host", "auto"
    net = apnn.from_qonnx("model.onnx")                   # a Brevitas / QONNX model
"""
from . import reference
from .core import Buffer, Context, PackedMatrix, cuda_device_count, default_context, version
from .errors import (ApnnError, CudaError, InvalidArgumentError, InvalidTypeError, NoDeviceError, OutOfMemoryError,
                     UnsupportedError)
from .gemm import gemm
from .conv import (ConvWeights, Epilogue, PackedTensor, conv2d, conv2d_benchmark, conv2d_kernel_name, conv2d_packed,
                   empty_nhwc, pack_conv_weights, pack_nhwc, set_conv_override)
from .network import Network
from .qonnx_import import ImportedNetwork, from_qonnx, from_torch
from . import models

__all__ = [
    "ApnnError", "Buffer", "Context", "CudaError", "InvalidArgumentError", "InvalidTypeError", "NoDeviceError",
    "OutOfMemoryError", "PackedMatrix", "UnsupportedError", "cuda_device_count", "default_context", "gemm",
    "reference", "version",
    "ConvWeights", "Epilogue", "PackedTensor", "conv2d", "conv2d_benchmark", "conv2d_kernel_name", "conv2d_packed",
    "empty_nhwc", "pack_conv_weights", "pack_nhwc", "set_conv_override",
    "Network", "models", "ImportedNetwork", "from_qonnx", "from_torch",
]
