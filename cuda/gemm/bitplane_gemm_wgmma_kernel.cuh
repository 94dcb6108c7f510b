// The bit-plane GEMM on Hopper's warpgroup binary MMA (wgmma.mma_async ... b1.b1.and.popc,
// SASS BGMMA), sm_90a only: the H100 runs it at ~15,300 TOPS against ~10,400 for
// mma.sync.m16n8k256 (tools/probe/wgmma_b1_peak.cu), and it reads both operands straight from
// shared memory, so no ldmatrix and no fragment registers.
//
// A block is two warpgroups; warpgroup g computes output rows 64g..64g+63 of a 128 x BN tile,
// one int32 accumulator set per plane pair (P*Q*BN/2 registers per thread), and the plane
// pairs are combined once, in the epilogue:
//     Y[m][n] = sum_ij cx_i cw_j acc_ij + ow*Sx[m] + ox*Sw[n] + K*ox*ow   (mod 2^32, exact).
// Operand tiles: 1024-bit slices of every bit-row of X (P planes x 128 rows) and W (Q planes x
// BN rows), one 128-byte shared-memory row each, 16-byte chunks placed with the 128-byte
// swizzle (chunk c of row r at c ^ (r % 8): swizzled<8>, the layout the wgmma descriptors name),
// copied by cp.async through a STAGES-deep ring. The wgmmas of a stage run asynchronously while
// the next stage's copies are issued; a slot is refilled two stages after its wgmmas were
// issued, once wgmma.wait_group has seen them finish.
#pragma once

#include <cstdint>

#include "arch/cp_async.cuh"
#include "arch/swizzle.cuh"
#include "arch/wgmma.cuh"
#include "gemm/gemm_params.h"

namespace apnn {

template <int BN, int STAGES, int P, int Q>
struct WgmmaGemm {
  static constexpr int kBM = 128;       // output rows per block: two warpgroups of 64
  static constexpr int kKT = 1024;      // bits per stage: one 128-byte row, the swizzle's span
  static constexpr int kThreads = 256;
  static constexpr int kRowsX = P * kBM, kRowsW = Q * BN;  // bit-rows of each operand tile
  static constexpr int kStageBytes = (kRowsX + kRowsW) * kKT / 8;
  static constexpr int kSmemBytes = STAGES * kStageBytes + 1024;  // + slack to align to 1024 bytes
  static constexpr int kRowStep = kThreads / 8;                  // bit-rows per copy step
  static constexpr int kLoadsX = kRowsX / kRowStep, kLoadsW = kRowsW / kRowStep;
  static_assert(STAGES >= 3, "a slot is refilled two stages after its wgmmas were issued");
  static_assert(BN == 64 || BN == 128 || BN == 192, "wgmma shapes instantiated here");
  static_assert(kRowsW % kRowStep == 0 && kBM % kRowStep == 0, "copies must divide evenly");
  static_assert(P * Q * BN / 2 <= 192, "accumulators must leave registers for the rest");
};

template <int BN, int STAGES, int P, int Q>
__global__ void __launch_bounds__(256, 1) bitplane_gemm_wgmma_kernel(const GemmParams params) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = WgmmaGemm<BN, STAGES, P, Q>;
  using namespace arch;
  constexpr int kBM = Cfg::kBM;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The 128-byte swizzle is applied to absolute shared-memory addresses: tiles start at 1024.
  const uint32_t smem_base = (smem_addr(smem_raw) + 1023u) & ~1023u;

  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * BN;
  const int tid = threadIdx.x;
  const int chunks_per_row = params.words / 4;
  const int k_tiles = (chunks_per_row + 7) / 8;

  // Copy slots: thread t copies chunk t % 8 of bit-rows t / 8 + l * kRowStep.
  const int r0 = tid / 8, chunk = tid % 8;
  const uint4* x_base = reinterpret_cast<const uint4*>(params.x_planes) +
                        static_cast<int64_t>(m0 + r0) * (params.words / 4) + chunk;
  const uint4* w_base = reinterpret_cast<const uint4*>(params.w_planes) +
                        static_cast<int64_t>(n0 + r0) * (params.words / 4) + chunk;
  const uint32_t dst0 = swizzled<8>(r0, chunk);
  const int64_t x_plane_stride = static_cast<int64_t>(params.x_rows_padded) * (params.words / 4);
  const int64_t w_plane_stride = static_cast<int64_t>(params.w_rows_padded) * (params.words / 4);
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * Cfg::kStageBytes + dst0;
    const int chunk0 = kt * 8;
    const bool k_ok = chunk0 + chunk < chunks_per_row;
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsX; ++l) {
      const int plane = l * Cfg::kRowStep / kBM, row = l * Cfg::kRowStep % kBM;
      const bool ok = k_ok && m0 + r0 + row < params.x_rows_padded;
      cp_async_16(stage + l * Cfg::kRowStep * 128,
                  x_base + plane * x_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsW; ++l) {
      const int plane = l * Cfg::kRowStep / BN, row = l * Cfg::kRowStep % BN;
      const bool ok = k_ok && n0 + r0 + row < params.w_rows_padded;
      cp_async_16(stage + Cfg::kRowsX * 128 + l * Cfg::kRowStep * 128,
                  w_base + plane * w_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
  };

  int32_t acc[P * Q][BN / 2];
#pragma unroll
  for (int pq = 0; pq < P * Q; ++pq)
#pragma unroll
    for (int e = 0; e < BN / 2; ++e) acc[pq][e] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 2; ++s) {
    if (s < k_tiles) load_stage(s, s);
    cp_async_commit();
  }
  const int group = tid / 128;  // warpgroup: output rows 64 * group ..
  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<STAGES - 3>();  // this thread's copies of stage t have landed
    fence_proxy_async();
    __syncthreads();  // all of stage t; and every warpgroup has finished the wgmmas of stage t - 2
    const int next = t + STAGES - 2;
    if (next < k_tiles) load_stage(next % STAGES, next);
    cp_async_commit();

    const uint32_t stage = smem_base + (t % STAGES) * Cfg::kStageBytes;
    const uint32_t x_tile = stage + group * 64 * 128, w_tile = stage + Cfg::kRowsX * 128;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < Cfg::kKT / 256; ++ks)
#pragma unroll
      for (int pi = 0; pi < P; ++pi)
#pragma unroll
        for (int qj = 0; qj < Q; ++qj)
          wgmma_b1_and<BN>(acc[pi * Q + qj], sw128_descriptor(x_tile + pi * kBM * 128 + ks * 32),
                           sw128_descriptor(w_tile + qj * BN * 128 + ks * 32));
    wgmma_commit();
    wgmma_wait<1>();  // the previous stage's wgmmas are done: its slot may be refilled
  }
  wgmma_wait<0>();
  cp_async_wait<0>();

  // Accumulator layout (PTX ISA, wgmma D fragments): warp w of the warpgroup holds rows
  // 16w + lane/4 (+8), register 4j + 2h + e is column 8j + 2(lane%4) + e of row half h.
  const int lane = tid & 31, warp_in_group = (tid / 32) % 4;
  auto combined = [&](int r) {  // sum_ij cx_i cw_j acc_ij of accumulator register r
    uint32_t v = 0;
#pragma unroll
    for (int pq = 0; pq < P * Q; ++pq)
      v += static_cast<uint32_t>(params.cx[pq / Q]) * static_cast<uint32_t>(params.cw[pq % Q]) *
           static_cast<uint32_t>(acc[pq][r]);
    return v;
  };
  const bool interior = n0 + BN <= params.N && params.N % 2 == 0;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = m0 + group * 64 + warp_in_group * 16 + lane / 4 + h * 8;
    if (m >= params.M) continue;
    const uint32_t row_term = static_cast<uint32_t>(params.ow) * static_cast<uint32_t>(__ldg(params.x_row_sums + m)) +
                              static_cast<uint32_t>(params.k_ox_ow);
    int32_t* out = params.y + static_cast<int64_t>(m) * params.N;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int n = n0 + j * 8 + (lane % 4) * 2;
      const uint32_t v0 = combined(4 * j + 2 * h) + row_term, v1 = combined(4 * j + 2 * h + 1) + row_term;
      const uint32_t ox = static_cast<uint32_t>(params.ox);
      if (interior) {  // two columns per store
        *reinterpret_cast<int2*>(out + n) =
            make_int2(static_cast<int32_t>(v0 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n))),
                      static_cast<int32_t>(v1 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n + 1))));
      } else {
        if (n < params.N) out[n] = static_cast<int32_t>(v0 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n)));
        if (n + 1 < params.N)
          out[n + 1] = static_cast<int32_t>(v1 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n + 1)));
      }
    }
  }
#endif
}

}  // namespace apnn
