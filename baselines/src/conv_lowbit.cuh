// CUTLASS Sm80 implicit-GEMM convolutions (fprop, NHWC, optimized iterators) on 1-bit and
// 4-bit codes.
#pragma once

#include <cutlass/conv/conv2d_problem_size.h>
#include <cutlass/conv/device/implicit_gemm_convolution.h>
#include <cutlass/conv/kernel/default_conv2d_fprop.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/layout/tensor.h>

#include "cutlass_util.cuh"

namespace apnnb {

using ConvEpilogue32 = cutlass::epilogue::thread::LinearCombination<int32_t, 4, int32_t, int32_t>;

template <typename Op>
using ConvB1 = cutlass::conv::device::ImplicitGemmConvolution<typename cutlass::conv::kernel::DefaultConv2dFprop<
    cutlass::uint1b_t, cutlass::layout::TensorNHWC, cutlass::uint1b_t, cutlass::layout::TensorNHWC, int32_t,
    cutlass::layout::TensorNHWC, int32_t, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 128, 512>, cutlass::gemm::GemmShape<64, 64, 512>,
    cutlass::gemm::GemmShape<16, 8, 256>, ConvEpilogue32, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>,
    3, Op, cutlass::conv::IteratorAlgorithm::kOptimized>::Kernel>;

using ConvS4 = cutlass::conv::device::ImplicitGemmConvolution<typename cutlass::conv::kernel::DefaultConv2dFprop<
    cutlass::int4b_t, cutlass::layout::TensorNHWC, cutlass::int4b_t, cutlass::layout::TensorNHWC, int32_t,
    cutlass::layout::TensorNHWC, int32_t, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 128, 128>, cutlass::gemm::GemmShape<64, 64, 128>,
    cutlass::gemm::GemmShape<16, 8, 64>, ConvEpilogue32, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>,
    3, cutlass::arch::OpMultiplyAddSaturate, cutlass::conv::IteratorAlgorithm::kOptimized>::Kernel>;

template <typename Conv>
void run_conv(const char* name, const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream) {
  using EA = typename Conv::ElementA;
  using EB = typename Conv::ElementB;
  cutlass::conv::Conv2dProblemSize problem(s.n, s.h, s.w, s.c, s.o, s.r, s.r, s.p, s.q, s.pad, s.pad, s.stride,
                                           s.stride, 1, 1, cutlass::conv::Mode::kCrossCorrelation, 1);
  using LA = cutlass::layout::TensorNHWC;
  cutlass::TensorRef<EA, LA> ref_x(reinterpret_cast<EA*>(const_cast<void*>(x)),
                                   LA::packed(cutlass::Tensor4DCoord(s.n, s.h, s.w, s.c)));
  cutlass::TensorRef<EB, LA> ref_w(reinterpret_cast<EB*>(const_cast<void*>(w)),
                                   LA::packed(cutlass::Tensor4DCoord(s.o, s.r, s.r, s.c)));
  cutlass::TensorRef<int32_t, LA> ref_y(y, LA::packed(cutlass::Tensor4DCoord(s.n, s.p, s.q, s.o)));
  typename Conv::Arguments args(problem, ref_x, ref_w, ref_y, ref_y, {1, 0});
  Conv conv;
  cutlass_check(conv.can_implement(args), name);
  cutlass_check(conv.initialize(args, nullptr, stream), name);
  cutlass_check(conv.run(stream), name);
  cuda_check(cudaGetLastError(), name);
}

}  // namespace apnnb
