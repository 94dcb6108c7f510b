// CUTLASS INT1 GEMM, XOR-popc.
#include "gemm_lowbit.cuh"

#include "runtime.h"

namespace apnnb {
void gemm_b1_xor(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream) {
  require_xor_popc("CUTLASS b1 XOR GEMM");  // never launch it where it asserts (sm_90+)
  run_tn_gemm<GemmB1<cutlass::arch::OpXorPopc>, void, void>("CUTLASS b1 XOR GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
