// CUTLASS FP16 tensor-op GEMM (TN, float accumulate and output) for the FP16 networks.
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm.h>

#include "cutlass_util.cuh"

namespace apnnb {
using GemmF16 = cutlass::gemm::device::Gemm<
    cutlass::half_t, cutlass::layout::RowMajor, cutlass::half_t, cutlass::layout::ColumnMajor, float,
    cutlass::layout::RowMajor, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 128, 32>, cutlass::gemm::GemmShape<64, 64, 32>, cutlass::gemm::GemmShape<16, 8, 16>,
    cutlass::epilogue::thread::LinearCombination<float, 4, float, float>,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>, 4, 8, 8>;

void gemm_f16(int m, int n, int k, const __half* a, const __half* b, float* c, cudaStream_t stream) {
  run_tn_gemm<GemmF16, void, void>("CUTLASS f16 GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
