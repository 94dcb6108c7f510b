// The "folded" bit-plane GEMM kernel for large problems with several plane pairs.
//
// The plain kernel (bitplane_gemm_kernel.cuh) keeps one int32 accumulator per plane pair
// and output, so registers bound its output tile and every output costs p*q accumulators.
// Here the plane pairs are folded into one accumulator per output as the k loop runs:
//     acc += mma(X_0, W_0)                        (coefficient 1, accumulated by the mma)
//     acc += coef_ij * mma(X_i, W_j, 0)           (every other pair, one IMAD per element)
// with coef_ij = cx_i * cw_j / (cx_0 * cw_0), an integer (cx_0, cw_0 are 1, or 2 for binary),
// and Y = cx_0 * cw_0 * acc + corrections at the end. The same registers then hold a p*q
// times larger output tile, so each byte loaded from L2 feeds p*q times more products;
// large bit-plane GEMMs are bound by L2 bandwidth, which is what this buys.
// Only compile-time plane counts (the fast paths) use it; arithmetic is modulo 2^32, exact
// because the final result fits in int32 (checked by the API).
#pragma once

#include <cstdint>

#include "arch/cp_async.cuh"
#include "arch/mma_sync.cuh"
#include "arch/swizzle.cuh"
#include "gemm/gemm_params.h"

namespace apnn {

// BM x BN output rows x columns per block, WM x WN per warp, KT bits per stage.
template <int BM, int BN, int WM, int WN, int KT, int STAGES, int P, int Q>
struct FoldedGemm {
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = kWarpsM * kWarpsN * 32;
  static constexpr int kCpr = KT / 128;
  static constexpr int kRowsX = P * BM, kRowsW = Q * BN;  // bit-rows of each operand tile
  static constexpr int kStageBytes = (kRowsX + kRowsW) * KT / 8;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  static constexpr int kSmemBytes = kPipeBytes;
  static constexpr int kLoadsX = kRowsX * kCpr / kThreads, kLoadsW = kRowsW * kCpr / kThreads;
  static constexpr int kMi = WM / 16, kNi = WN / 8;
  static_assert(P >= 1 && Q >= 1, "the folded kernel needs compile-time plane counts");
  static_assert(kCpr == 2 || kCpr == 4 || kCpr == 8, "KT must be 256, 512 or 1024 bits");
  static_assert(kRowsX * kCpr % kThreads == 0 && kRowsW * kCpr % kThreads == 0, "loads must divide evenly");
};

template <int BM, int BN, int WM, int WN, int KT, int STAGES, int P, int Q>
__global__ void __launch_bounds__(FoldedGemm<BM, BN, WM, WN, KT, STAGES, P, Q>::kThreads, 1)
    bitplane_gemm_folded_kernel(const GemmParams params) {
  using Cfg = FoldedGemm<BM, BN, WM, WN, KT, STAGES, P, Q>;
  using namespace arch;
  constexpr int kCpr = Cfg::kCpr;
  extern __shared__ __align__(128) unsigned char smem[];

  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int chunks_per_row = params.words / 4;
  const int k_tiles = (chunks_per_row + kCpr - 1) / kCpr;

  // Copy slots: thread t copies chunk t % kCpr of bit-rows r0 + l * kRowStep (l = 0, 1, ...),
  // r0 = t / kCpr. Bit-row r of X is plane r / BM, output row r % BM; kRowStep divides BM,
  // so the plane and row of slot l are compile-time offsets from r0 (few registers).
  constexpr int kRowStep = Cfg::kThreads / kCpr;
  static_assert(BM % kRowStep == 0 && BN % kRowStep == 0, "tile rows must be multiples of the copy step");
  static_assert(kRowStep % (8 / kCpr * kCpr) == 0, "the swizzle must repeat every copy step");
  const int r0 = tid / kCpr, chunk = tid % kCpr;
  const uint4* x_base = reinterpret_cast<const uint4*>(params.x_planes) +
                        static_cast<int64_t>(m0 + r0) * (params.words / 4) + chunk;
  const uint4* w_base = reinterpret_cast<const uint4*>(params.w_planes) +
                        static_cast<int64_t>(n0 + r0) * (params.words / 4) + chunk;
  const uint32_t dst0 = swizzled<kCpr>(r0, chunk);
  const uint32_t smem_base = smem_addr(smem);

  const int64_t x_plane_stride = static_cast<int64_t>(params.x_rows_padded) * (params.words / 4);
  const int64_t w_plane_stride = static_cast<int64_t>(params.w_rows_padded) * (params.words / 4);
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * Cfg::kStageBytes + dst0;
    const int chunk0 = kt * kCpr;
    const bool k_ok = chunk0 + chunk < chunks_per_row;
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsX; ++l) {
      const int plane = l * kRowStep / BM, row = l * kRowStep % BM;
      const bool ok = k_ok && m0 + r0 + row < params.x_rows_padded;
      cp_async_16(stage + l * kRowStep * kCpr * 16,
                  x_base + plane * x_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsW; ++l) {
      const int plane = l * kRowStep / BN, row = l * kRowStep % BN;
      const bool ok = k_ok && n0 + r0 + row < params.w_rows_padded;
      cp_async_16(stage + Cfg::kRowsX * KT / 8 + l * kRowStep * kCpr * 16,
                  w_base + plane * w_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
  };

  // coef[i][j] = cx_i * cw_j / (cx_0 * cw_0), exact (see the top of this file).
  int32_t coef[P][Q];
#pragma unroll
  for (int i = 0; i < P; ++i)
#pragma unroll
    for (int j = 0; j < Q; ++j) coef[i][j] = (params.cx[i] / params.cx[0]) * (params.cw[j] / params.cw[0]);

  int32_t acc[Cfg::kMi][Cfg::kNi][4];
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNi; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    cp_async_commit();
  }

  const int a_row = warp_m * WM + (lane & 15), a_half = lane >> 4;
  const int b_row = warp_n * WN + (lane & 7) + ((lane >> 4) << 3), b_half = (lane >> 3) & 1;

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int next = t + STAGES - 1;
    if (next < k_tiles) load_stage(next % STAGES, next);
    cp_async_commit();

    const uint32_t stage = smem_base + (t % STAGES) * Cfg::kStageBytes;
    const uint32_t x_tile = stage, w_tile = stage + Cfg::kRowsX * KT / 8;
    // Not unrolled: overlapping two k-steps' fragments would spill the accumulators.
#pragma unroll 1
    for (int ks = 0; ks < KT / 256; ++ks) {
      uint32_t a[P][Cfg::kMi][4];
      uint32_t b[Q][Cfg::kNi][2];
#pragma unroll
      for (int pi = 0; pi < P; ++pi)
#pragma unroll
        for (int i = 0; i < Cfg::kMi; ++i)
          ldmatrix_x4(a[pi][i], x_tile + swizzled<kCpr>(pi * BM + a_row + i * 16, 2 * ks + a_half));
#pragma unroll
      for (int qj = 0; qj < Q; ++qj)
#pragma unroll
        for (int j = 0; j < Cfg::kNi; j += 2) {
          uint32_t r[4];
          ldmatrix_x4(r, w_tile + swizzled<kCpr>(qj * BN + b_row + j * 8, 2 * ks + b_half));
          b[qj][j][0] = r[0];
          b[qj][j][1] = r[1];
          b[qj][j + 1][0] = r[2];
          b[qj][j + 1][1] = r[3];
        }
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNi; ++j) {
          mma_b1_and(acc[i][j], a[0][i], b[0][j][0], b[0][j][1]);
#pragma unroll
          for (int pi = 0; pi < P; ++pi)
#pragma unroll
            for (int qj = 0; qj < Q; ++qj) {
              if (pi == 0 && qj == 0) continue;
              int32_t part[4] = {0, 0, 0, 0};
              mma_b1_and(part, a[pi][i], b[qj][j][0], b[qj][j][1]);
#pragma unroll
              for (int e = 0; e < 4; ++e)
                acc[i][j][e] = static_cast<int32_t>(static_cast<uint32_t>(acc[i][j][e]) +
                                                    static_cast<uint32_t>(coef[pi][qj]) * static_cast<uint32_t>(part[e]));
            }
        }
    }
  }
  cp_async_wait<0>();

  // Y = cx_0 cw_0 acc + ow * Sx[m] + ox * Sw[n] + K ox ow, straight from registers, the row sums
  // read from global memory here. Interior tiles store pairs without per-column checks, edge
  // tiles check each column, in two separate loops. The form matters at the 255-register limit,
  // where anything live across the main loop costs ptxas's schedule (8192^3 w1a2: this form
  // 417-420 us; the tile indexes kept from the prologue 431 us, one loop with the checks 458 us,
  // the sums staged in shared memory 437-450 us); re-measure after any change here.
  const uint32_t scale = static_cast<uint32_t>(params.cx[0]) * static_cast<uint32_t>(params.cw[0]);
  {
    // Fresh (volatile) reads of the thread and block indexes, so that the compiler does not keep
    // the prologue's copies live across the main loop.
    unsigned tid_again, bx, by;
    asm volatile("mov.u32 %0, %%tid.x;" : "=r"(tid_again));
    asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(bx));
    asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(by));
    const int m0 = by * BM, n0 = bx * BN;
    const int lane = tid_again & 31, warp = tid_again >> 5;
    const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
    const int g = lane >> 2, tig = lane & 3;
    if (n0 + BN <= params.N && params.N % 2 == 0) {
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int m = m0 + warp_m * WM + i * 16 + g + half * 8;
          if (m >= params.M) continue;
          const uint32_t row_term =
              static_cast<uint32_t>(params.ow) * static_cast<uint32_t>(__ldg(params.x_row_sums + m)) +
              static_cast<uint32_t>(params.k_ox_ow);
          int32_t* out = params.y + static_cast<int64_t>(m) * params.N;
#pragma unroll
          for (int j = 0; j < Cfg::kNi; ++j) {
            const int n = n0 + warp_n * WN + j * 8 + tig * 2;
            const uint32_t c0 =
                static_cast<uint32_t>(params.ox) * static_cast<uint32_t>(__ldg(params.w_row_sums + n));
            const uint32_t c1 =
                static_cast<uint32_t>(params.ox) * static_cast<uint32_t>(__ldg(params.w_row_sums + n + 1));
            *reinterpret_cast<int2*>(out + n) =
                make_int2(static_cast<int32_t>(scale * static_cast<uint32_t>(acc[i][j][2 * half]) + row_term + c0),
                          static_cast<int32_t>(scale * static_cast<uint32_t>(acc[i][j][2 * half + 1]) + row_term + c1));
          }
        }
    } else {
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int m = m0 + warp_m * WM + i * 16 + g + half * 8;
          if (m >= params.M) continue;
          const uint32_t row_term =
              static_cast<uint32_t>(params.ow) * static_cast<uint32_t>(__ldg(params.x_row_sums + m)) +
              static_cast<uint32_t>(params.k_ox_ow);
          int32_t* out = params.y + static_cast<int64_t>(m) * params.N;
#pragma unroll
          for (int j = 0; j < Cfg::kNi; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int n = n0 + warp_n * WN + j * 8 + tig * 2 + e;
              if (n < params.N)
                out[n] = static_cast<int32_t>(
                  scale * static_cast<uint32_t>(acc[i][j][2 * half + e]) + row_term +
                  static_cast<uint32_t>(params.ox) * static_cast<uint32_t>(__ldg(params.w_row_sums + n)));
            }
        }
    }
  }
}

}  // namespace apnn
