// CUTLASS INT1 XOR-popc implicit-GEMM convolution.
#include "conv_lowbit.cuh"

#include "runtime.h"

namespace apnnb {
void conv_b1_xor(const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream) {
  require_xor_popc("CUTLASS INT1 XOR-popc conv");  // never launch it where it asserts (sm_90+)
  run_conv<ConvB1<cutlass::arch::OpXorPopc>>("CUTLASS INT1 XOR-popc conv", s, x, w, y, stream);
}
}  // namespace apnnb
