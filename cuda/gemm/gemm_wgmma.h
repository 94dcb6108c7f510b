// The warpgroup (wgmma) bit-plane GEMM of sm_90a: which plane counts have it, and its launch.
// Compiled for sm_90a only (cuda/BUILD.bazel: cuda_sm90a); callers check the device first.
#pragma once

#include <cuda_runtime.h>

#include "gemm/gemm_params.h"

namespace apnn {

constexpr int kWgmmaTileRows = 128;  // output rows per block: two warpgroups of 64

// Whether a kernel with `tile_n` output columns per block exists for p x q planes: 128 columns
// for w1a1 and w1a2, 64 for those and w1a3, w1a4, w2a2 (the accumulators of every plane pair
// stay in registers, P*Q*tile_n/2 per thread).
bool has_wgmma_gemm(int p, int q, int tile_n);

// Launches the kernel with params.tn output columns per block over `grid` (columns, rows).
void launch_wgmma_gemm(const GemmParams& params, dim3 grid, cudaStream_t stream);

}  // namespace apnn
