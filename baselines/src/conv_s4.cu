// CUTLASS INT4 implicit-GEMM convolution.
#include "conv_lowbit.cuh"

namespace apnnb {
void conv_s4(const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream) {
  run_conv<ConvS4>("CUTLASS INT4 conv", s, x, w, y, stream);
}
}  // namespace apnnb
