// CUTLASS INT8 tensor-op GEMM (TN, int32 accumulate and output) for the INT8 networks.
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm.h>

#include "cutlass_util.cuh"

namespace apnnb {
using GemmS8 = cutlass::gemm::device::Gemm<
    int8_t, cutlass::layout::RowMajor, int8_t, cutlass::layout::ColumnMajor, int32_t, cutlass::layout::RowMajor,
    int32_t, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, cutlass::gemm::GemmShape<128, 128, 64>,
    cutlass::gemm::GemmShape<64, 64, 64>, cutlass::gemm::GemmShape<16, 8, 32>,
    cutlass::epilogue::thread::LinearCombination<int32_t, 4, int32_t, int32_t>,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>, 3, 16, 16, false,
    cutlass::arch::OpMultiplyAddSaturate>;

void gemm_s8(int m, int n, int k, const int8_t* a, const int8_t* b, int32_t* c, cudaStream_t stream) {
  run_tn_gemm<GemmS8, void, void>("CUTLASS s8 GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
