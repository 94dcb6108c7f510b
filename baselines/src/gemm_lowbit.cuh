// CUTLASS Sm80 tensor-op GEMMs on 1-bit and 4-bit codes (TN: A row-major, B column-major).
#pragma once

#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm.h>

#include "cutlass_util.cuh"

namespace apnnb {

using Epilogue32 = cutlass::epilogue::thread::LinearCombination<int32_t, 4, int32_t, int32_t>;

// b1: 128x128x512 block tile, 64x64x512 warps, m16n8k256 mma, 3 stages.
template <typename Op>
using GemmB1 = cutlass::gemm::device::Gemm<
    cutlass::uint1b_t, cutlass::layout::RowMajor, cutlass::uint1b_t, cutlass::layout::ColumnMajor, int32_t,
    cutlass::layout::RowMajor, int32_t, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 128, 512>, cutlass::gemm::GemmShape<64, 64, 512>,
    cutlass::gemm::GemmShape<16, 8, 256>, Epilogue32, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>,
    3, 128, 128, false, Op>;

// s4: 128x128x128 block tile, 64x64x128 warps, m16n8k64 mma, 3 stages.
using GemmS4 = cutlass::gemm::device::Gemm<
    cutlass::int4b_t, cutlass::layout::RowMajor, cutlass::int4b_t, cutlass::layout::ColumnMajor, int32_t,
    cutlass::layout::RowMajor, int32_t, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 128, 128>, cutlass::gemm::GemmShape<64, 64, 128>,
    cutlass::gemm::GemmShape<16, 8, 64>, Epilogue32, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>,
    3, 32, 32, false, cutlass::arch::OpMultiplyAddSaturate>;

}  // namespace apnnb
