// The bit-plane GEMM kernel on mma.sync.m16n8k256.b1.and.popc.
//
// View X (M x K, p planes) as a binary matrix of p*M "bit-rows" and W (N x K, q planes) as
// q*N "bit-columns". A block computes the binary product of BM bit-rows and BN bit-columns,
// chosen so that they hold all p planes of TM = BM / p output rows and all q planes of
// TN = BN / q output columns: one read of a tile of X feeds all p*q plane products. At the
// end the block combines its popcount tile in shared memory,
//     Y[m][n] = sum_ij cx_i cw_j popc(X_i[m] & W_j[n]) + ow*Sx[m] + ox*Sw[n] + K*ox*ow,
// (docs/arithmetic.md) and writes int32.
//
// Split K: the blocks of one output tile along grid.z either form a thread-block cluster
// (sm_90) and add their popcount tiles through distributed shared memory, or (sm_80) add
// their partial results into a self-cleaning global workspace.
//
// Pipeline: STAGES-deep cp.async ring of KT-bit slices; shared-memory rows are KT/8 bytes,
// 16-byte chunks XOR-swizzled so that ldmatrix reads 8 rows without bank conflicts.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "arch/cp_async.cuh"
#include "arch/mma_sync.cuh"
#include "arch/swizzle.cuh"
#include "gemm/gemm_params.h"

namespace apnn {

// BM x BN bit-rows x bit-cols per block, WM x WN per warp, KT bits per pipeline stage.
// P, Q: compile-time plane counts, or 0 to read them from params (the generic kernel).
template <int BM, int BN, int WM, int WN, int KT, int STAGES, int P, int Q>
struct BitplaneGemm {
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = kWarpsM * kWarpsN * 32;
  static constexpr int kCpr = KT / 128;  // 16-byte chunks per row per stage
  static constexpr int kStageBytes = (BM + BN) * KT / 8;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  static constexpr int kAccStride = BN + 4;  // int32 per row of the combine tile
  static constexpr int kAccBytes = BM * kAccStride * 4;
  static constexpr int kMainBytes = kPipeBytes > kAccBytes ? kPipeBytes : kAccBytes;
  // Row sums of the block's output rows and columns (at most BM + BN of them).
  static constexpr int kSmemBytes = kMainBytes + (BM + BN) * 4;
  static constexpr int kLoadsX = BM * kCpr / kThreads, kLoadsW = BN * kCpr / kThreads;
  static constexpr int kMi = WM / 16, kNi = WN / 8;
  static_assert(kCpr == 2 || kCpr == 4 || kCpr == 8, "KT must be 256, 512 or 1024 bits");
  static_assert(BM * kCpr % kThreads == 0 && BN * kCpr % kThreads == 0, "loads must divide evenly");
  static_assert(WN % 16 == 0 && WM % 16 == 0, "warp tile must be a multiple of 16 x 16");
};

template <int BM, int BN, int WM, int WN, int KT, int STAGES, int P, int Q>
__global__ void __launch_bounds__(BitplaneGemm<BM, BN, WM, WN, KT, STAGES, P, Q>::kThreads)
    bitplane_gemm_kernel(const GemmParams params) {
  using Cfg = BitplaneGemm<BM, BN, WM, WN, KT, STAGES, P, Q>;
  using namespace arch;
  constexpr int kCpr = Cfg::kCpr;
  extern __shared__ __align__(128) unsigned char smem[];

  const int p = P ? P : params.p;
  const int q = Q ? Q : params.q;
  const int tm = P ? BM / P : params.tm;  // output rows per block
  const int tn = Q ? BN / Q : params.tn;  // output columns per block
  const int m0 = blockIdx.y * tm, n0 = blockIdx.x * tn;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int chunks_per_row = params.words / 4;  // 16-byte chunks in a row of one plane

  // K range of this block (split-K over grid.z).
  const int k_tiles = (chunks_per_row + kCpr - 1) / kCpr;
  const int tiles_per_split = (k_tiles + gridDim.z - 1) / gridDim.z;
  const int kt_begin = blockIdx.z * tiles_per_split;
  const int kt_end = min(k_tiles, kt_begin + tiles_per_split);
  const int num_tiles = max(0, kt_end - kt_begin);

  // Each thread copies fixed (bit-row, chunk) slots of every stage: resolve them once.
  const uint4* x_src[Cfg::kLoadsX];
  const uint4* w_src[Cfg::kLoadsW];
  uint32_t x_dst[Cfg::kLoadsX], w_dst[Cfg::kLoadsW];
  int x_chunk[Cfg::kLoadsX], w_chunk[Cfg::kLoadsW];
  bool x_ok[Cfg::kLoadsX], w_ok[Cfg::kLoadsW];
#pragma unroll
  for (int l = 0; l < Cfg::kLoadsX; ++l) {
    const int id = tid + l * Cfg::kThreads, r = id / kCpr, c = id % kCpr;
    const int plane = r / tm, m = m0 + r % tm;
    x_ok[l] = plane < p && m < params.x_rows_padded;
    x_chunk[l] = c;
    x_src[l] = reinterpret_cast<const uint4*>(params.x_planes +
                                              (static_cast<int64_t>(x_ok[l] ? plane : 0) * params.x_rows_padded +
                                               (x_ok[l] ? m : 0)) * params.words) + c;
    x_dst[l] = swizzled<kCpr>(r, c);
  }
#pragma unroll
  for (int l = 0; l < Cfg::kLoadsW; ++l) {
    const int id = tid + l * Cfg::kThreads, r = id / kCpr, c = id % kCpr;
    const int plane = r / tn, n = n0 + r % tn;
    w_ok[l] = plane < q && n < params.w_rows_padded;
    w_chunk[l] = c;
    w_src[l] = reinterpret_cast<const uint4*>(params.w_planes +
                                              (static_cast<int64_t>(w_ok[l] ? plane : 0) * params.w_rows_padded +
                                               (w_ok[l] ? n : 0)) * params.words) + c;
    w_dst[l] = BM * KT / 8 + swizzled<kCpr>(r, c);
  }

  const uint32_t smem_base = smem_addr(smem);

  // The row sums feed only the final corrections; fetch them with the first stage so their
  // latency hides behind the main loop.
  int32_t* x_sums = reinterpret_cast<int32_t*>(smem + Cfg::kMainBytes);
  int32_t* w_sums = x_sums + tm;
  for (int i = tid; i < tm + tn; i += Cfg::kThreads) {
    const bool is_x = i < tm;
    const int index = is_x ? m0 + i : n0 + (i - tm);
    const int limit = is_x ? params.x_rows_padded : params.w_rows_padded;
    if (index < limit) {
      cp_async_4(smem_addr(x_sums + i), (is_x ? params.x_row_sums : params.w_row_sums) + index);
    }
  }
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * Cfg::kStageBytes;
    const int chunk0 = kt * kCpr;
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsX; ++l)
      cp_async_16(stage + x_dst[l], x_src[l] + chunk0, x_ok[l] && chunk0 + x_chunk[l] < chunks_per_row);
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsW; ++l)
      cp_async_16(stage + w_dst[l], w_src[l] + chunk0, w_ok[l] && chunk0 + w_chunk[l] < chunks_per_row);
  };

  int32_t acc[Cfg::kMi][Cfg::kNi][4];
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNi; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < num_tiles) load_stage(s, kt_begin + s);
    cp_async_commit();
  }

  // Lane-dependent parts of the ldmatrix addresses (see the fragment layouts of
  // m16n8k256.b1: A rows g / g+8 and k halves, B columns g and k halves).
  const int a_row = warp_m * WM + (lane & 15), a_half = lane >> 4;
  const int b_row = warp_n * WN + (lane & 7) + ((lane >> 4) << 3), b_half = (lane >> 3) & 1;

  for (int t = 0; t < num_tiles; ++t) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int next = t + STAGES - 1;
    if (next < num_tiles) load_stage(next % STAGES, kt_begin + next);
    cp_async_commit();

    const uint32_t stage = smem_base + (t % STAGES) * Cfg::kStageBytes;
    const uint32_t x_tile = stage, w_tile = stage + BM * KT / 8;
#pragma unroll
    for (int ks = 0; ks < KT / 256; ++ks) {
      uint32_t a[Cfg::kMi][4];
      uint32_t b[Cfg::kNi][2];
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i) ldmatrix_x4(a[i], x_tile + swizzled<kCpr>(a_row + i * 16, 2 * ks + a_half));
#pragma unroll
      for (int j = 0; j < Cfg::kNi; j += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, w_tile + swizzled<kCpr>(b_row + j * 8, 2 * ks + b_half));
        b[j][0] = r[0];
        b[j][1] = r[1];
        b[j + 1][0] = r[2];
        b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNi; ++j) mma_b1_and(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  // Combine: popcount tile -> shared memory -> weighted sums over plane pairs.
  int32_t* tile = reinterpret_cast<int32_t*>(smem);
  const int g = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNi; ++j) {
      const int r = warp_m * WM + i * 16 + g, c = warp_n * WN + j * 8 + tig * 2;
      *reinterpret_cast<int2*>(&tile[r * Cfg::kAccStride + c]) = make_int2(acc[i][j][0], acc[i][j][1]);
      *reinterpret_cast<int2*>(&tile[(r + 8) * Cfg::kAccStride + c]) = make_int2(acc[i][j][2], acc[i][j][3]);
    }
  __syncthreads();

  // Weighted sums over plane pairs plus the rank-1 corrections. Computed modulo 2^32: the
  // true result fits in int32 (checked by the API), and ring arithmetic is exact mod 2^32.
  const bool first_split = blockIdx.z == 0;
  auto combined = [&](const int32_t* popc, int mm, int nn) {
    uint32_t sum = 0;
#pragma unroll
    for (int i = 0; i < (P ? P : kMaxPlanes); ++i) {
      if (!P && i >= p) break;
      uint32_t row = 0;
#pragma unroll
      for (int j = 0; j < (Q ? Q : kMaxPlanes); ++j) {
        if (!Q && j >= q) break;
        row += static_cast<uint32_t>(params.cw[j]) *
               static_cast<uint32_t>(popc[(i * tm + mm) * Cfg::kAccStride + j * tn + nn]);
      }
      sum += static_cast<uint32_t>(params.cx[i]) * row;
    }
    return sum;
  };
  auto corrections = [&](int mm, int nn) {
    return static_cast<uint32_t>(params.ow) * static_cast<uint32_t>(x_sums[mm]) +
           static_cast<uint32_t>(params.ox) * static_cast<uint32_t>(w_sums[nn]) + static_cast<uint32_t>(params.k_ox_ow);
  };

  if (gridDim.z == 1) {
    for (int idx = tid; idx < tm * tn; idx += Cfg::kThreads) {
      const int mm = idx / tn, nn = idx % tn, m = m0 + mm, n = n0 + nn;
      if (m < params.M && n < params.N) params.y[static_cast<int64_t>(m) * params.N + n] = static_cast<int32_t>(combined(tile, mm, nn) + corrections(mm, nn));
    }
    return;
  }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (params.cluster_split) {
    // The gridDim.z blocks of this tile are one cluster: block r sums every block's raw
    // popcounts for its share of the outputs, read straight from their shared memory.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every popcount tile is complete
    const int ranks = static_cast<int>(cluster.num_blocks());
    const int rank = static_cast<int>(cluster.block_rank());
    for (int idx = rank * Cfg::kThreads + tid; idx < tm * tn; idx += ranks * Cfg::kThreads) {
      const int mm = idx / tn, nn = idx % tn, m = m0 + mm, n = n0 + nn;
      if (m >= params.M || n >= params.N) continue;
      uint32_t sum = corrections(mm, nn);
      for (int r = 0; r < ranks; ++r) sum += combined(cluster.map_shared_rank(tile, r), mm, nn);
      params.y[static_cast<int64_t>(m) * params.N + n] = static_cast<int32_t>(sum);
    }
    cluster.sync();  // keep shared memory alive until every block has read it
    return;
  }
#endif

  // Split K without clusters: add the partial tile into the workspace; the last split to
  // arrive writes Y and leaves workspace and counter zeroed for the next call.
  for (int idx = tid; idx < tm * tn; idx += Cfg::kThreads) {
    const int mm = idx / tn, nn = idx % tn, m = m0 + mm, n = n0 + nn;
    if (m < params.M && n < params.N)
      atomicAdd(reinterpret_cast<unsigned*>(&params.workspace[static_cast<int64_t>(m) * params.N + n]),
                combined(tile, mm, nn) + (first_split ? corrections(mm, nn) : 0u));
  }
  __threadfence();
  __syncthreads();
  __shared__ bool last_split;
  unsigned* counter = params.tile_counters + blockIdx.y * gridDim.x + blockIdx.x;
  if (tid == 0) last_split = atomicAdd(counter, 1u) == gridDim.z - 1;
  __syncthreads();
  if (!last_split) return;
  __threadfence();
  for (int idx = tid; idx < tm * tn; idx += Cfg::kThreads) {
    const int mm = idx / tn, nn = idx % tn, m = m0 + mm, n = n0 + nn;
    if (m < params.M && n < params.N) {
      int32_t* ws = &params.workspace[static_cast<int64_t>(m) * params.N + n];
      params.y[static_cast<int64_t>(m) * params.N + n] = __ldcg(ws);
      *ws = 0;
    }
  }
  if (tid == 0) *counter = 0;
}

}  // namespace apnn
