// CUTLASS INT1 GEMM, AND-popc.
#include "gemm_lowbit.cuh"

namespace apnnb {
void gemm_b1_and(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream) {
  run_tn_gemm<GemmB1<cutlass::arch::OpAndPopc>, void, void>("CUTLASS b1 AND GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
