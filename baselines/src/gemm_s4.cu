// CUTLASS INT4 GEMM (signed 4-bit codes, saturating int32 accumulate).
#include "gemm_lowbit.cuh"

namespace apnnb {
void gemm_s4(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream) {
  run_tn_gemm<GemmS4, void, void>("CUTLASS s4 GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
