// CUTLASS FP32 SIMT SGEMM (TN) for the FP32 networks.
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm.h>

#include "cutlass_util.cuh"

namespace apnnb {
using GemmF32 = cutlass::gemm::device::Gemm<float, cutlass::layout::RowMajor, float, cutlass::layout::ColumnMajor, float,
                                            cutlass::layout::RowMajor, float, cutlass::arch::OpClassSimt,
                                            cutlass::arch::Sm80>;

void gemm_f32(int m, int n, int k, const float* a, const float* b, float* c, cudaStream_t stream) {
  run_tn_gemm<GemmF32, void, void>("CUTLASS f32 SIMT GEMM", m, n, k, a, b, c, stream);
}
}  // namespace apnnb
