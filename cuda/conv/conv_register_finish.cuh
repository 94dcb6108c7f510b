// The finish of a tiled convolution straight from the wgmma accumulators (sm_90a).
//
// The shared-memory finish (conv_kernel.cuh) parks the popcount tile in shared memory and then
// walks it a warp per pixel, a lane per channel: about 40 instructions and two dependent
// shared-memory round trips per output, which cost the fused layers +50-60% over the bare
// convolution. Here each thread finishes the outputs it already holds: with the tile order
// below, a thread's registers hold every plane pair of its pixels and channels, so an output is
// a few multiply-adds, three compares against the channel's thresholds and a byte of a packed
// level word; the 32-channel plane words are put together across the 4 lanes that share a row.
//
// It serves the compile-time plane counts 1 and 2, one K split (no cluster reduction), and no
// weight-offset term (ox == 0, so no per-tap summed-area lookups): int32 results, or packed
// codes through the threshold table (epilogue_thresholds.h), with a packed residual of <= 2 bits
// (one table part per residual code) or the fused 2x2 max pool. The dispatcher
// (conv_dispatch.cu) chooses it; the shared-memory finish covers everything else.
#pragma once

#include <climits>
#include <cstdint>

#include "common/epilogue.h"
#include "common/quant.h"
#include "common/threshold_entry.cuh"
#include "conv/conv_params.h"
#include "conv/fragment_outputs.cuh"
#include "conv/row_sum_parts.cuh"

namespace apnn {
namespace conv_detail {

// Tile order of bit-rows (or bit-columns): with 2 planes, the planes of pixel (or channel) i are
// rows 16 * (i / 8) + 8 * plane + i % 8, so the wgmma thread that holds row r also holds row
// r + 8, the other plane of the same pixel. Otherwise plane-major: plane * per_plane + i.
template <int Planes>
__device__ __forceinline__ int tile_index(int plane, int i, int per_plane) {
  return Planes == 2 ? ((i >> 3) << 4) | (plane << 3) | (i & 7) : plane * per_plane + i;
}
template <int Planes>
__device__ __forceinline__ void tile_plane(int index, int per_plane, int& plane, int& i) {
  if (Planes == 2) {
    plane = (index >> 3) & 1;
    i = ((index >> 4) << 3) | (index & 7);
  } else {
    plane = index / per_plane;
    i = index - plane * per_plane;
  }
}

// acc: this thread's wgmma accumulators, kMTiles tiles of 64 rows x BN columns (PTX ISA's D
// fragment: warp w of a warpgroup holds rows 16w + lane/4 and + 8; register 4j + 2h + e is column
// 8j + 2(lane%4) + e of row half h). first_row: the row of lane 0 in the first tile. s_xsum:
// per tile pixel, the input row sums over its valid taps; s_thresholds: per tile channel, the
// threshold_entry (common/threshold_entry.cuh) (packed outputs only), with kResidual one part per residual code,
// BN entries apart.
template <int BN, int kMTiles, int P, int Q, bool kPacked, bool kPool, bool kResidual>
__device__ __forceinline__ void register_finish(const ConvKernelParams& prm, const int32_t (&acc)[kMTiles][BN / 2],
                                                int first_row, int m0, int n0, const uint32_t* s_xsum,
                                                const int4* s_thresholds) {
  static_assert((P == 1 || P == 2) && (Q == 1 || Q == 2), "compile-time plane counts 1 and 2");
  static_assert(kPacked || !(kPool || kResidual), "pools and residuals fuse into packed outputs");
  static_assert(!(kPool && kResidual), "no pool after a residual add");
  constexpr int kPixels = kMTiles * (P == 1 ? 2 : 1);  // output pixels this thread holds
  constexpr int kChannelBlocks = BN / 8 / Q;          // 8-channel column blocks of the tile
  const int lane = threadIdx.x & 31, quad = lane & 3;

  int pixel[kPixels];  // tile pixel of each held output row
  uint32_t corr[kPixels];
#pragma unroll
  for (int u = 0; u < kPixels; ++u) {
    const int row = first_row + (lane >> 2) + 64 * (P == 1 ? u >> 1 : u) + (P == 1 ? 8 * (u & 1) : 0);
    pixel[u] = P == 2 ? ((row >> 4) << 3) | (row & 7) : row;
    corr[u] = static_cast<uint32_t>(prm.ow) * s_xsum[pixel[u]];  // ox == 0: the only correction
  }
  // The convolution value of held pixel u at channel 8 jc + 2 quad + e (two's complement sums,
  // exact once reduced to int32, as in the shared-memory finish).
  const PairCoefficients<P, Q> pair(prm.cx, prm.cw);
  auto value = [&](int u, int jc, int e) -> int32_t {
    const int tile = P == 1 ? u >> 1 : u;
    uint32_t sum = corr[u];
#pragma unroll
    for (int jq = 0; jq < Q; ++jq) {
      const int j = jc * Q + jq;  // column block of weight plane jq (tile_index<Q>)
#pragma unroll
      for (int ip = 0; ip < P; ++ip) {
        const int h = P == 1 ? (u & 1) : ip;  // row half: the other pixel, or the other plane
        sum += pair.c[ip][jq] * static_cast<uint32_t>(acc[tile][4 * j + 2 * h + e]);
      }
    }
    return static_cast<int32_t>(sum);
  };

  if constexpr (!kPacked) {
    const bool pairs = (prm.O & 1) == 0;  // channel pairs (o even) are 8-byte aligned
#pragma unroll
    for (int u = 0; u < kPixels; ++u) {
      const int m = m0 + pixel[u];
      if (m >= prm.M) continue;
      int32_t* y_row = prm.y + static_cast<int64_t>(m) * prm.O;
#pragma unroll
      for (int jc = 0; jc < kChannelBlocks; ++jc)
        store_channel_pair(y_row, n0 + 8 * jc + 2 * quad, prm.O, pairs, value(u, jc, 0), value(u, jc, 1));
    }
  } else {
    const PackedOutput out(prm.oq, prm.out_planes, prm.out_rows_padded, prm.out_words);
    // With the pool, the lanes 4 and 8 apart hold the other pixels of a 2x2 window (conv_pixel's
    // window order): the window's level is their byte-wise maximum, and the first quad stores it.
    const bool stores = !kPool || ((lane >> 2) & 3) == 0;
    int32_t row_sum[kPixels];
#pragma unroll
    for (int u = 0; u < kPixels; ++u) row_sum[u] = 0;
#pragma unroll
    for (int word = 0; word < kChannelBlocks / 4; ++word) {
      const int o0 = n0 + 32 * word;  // n0 is a multiple of 32 (tn % 32 == 0)
      // The residual's codes of this thread's channels of the 32-channel word, one per held pixel.
      uint32_t codes[kPixels];
      if constexpr (kResidual) {
#pragma unroll
        for (int u = 0; u < kPixels; ++u) {
          const int m = m0 + pixel[u];
          uint32_t words[2];
          residual_words(prm.res, m, o0, m < prm.M && o0 < prm.O, words);
          codes[u] = quad_residual_codes(words[0], words[1], quad);
        }
      }
      uint32_t levels[kPixels][2];  // byte b of [u][e]: the level at channel 32 word + 8 b + 2 quad + e
#pragma unroll
      for (int u = 0; u < kPixels; ++u) levels[u][0] = levels[u][1] = 0;
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const int jc = 4 * word + b, nn = 8 * jc + 2 * quad;
        int4 t[2];
        if constexpr (!kResidual) t[0] = s_thresholds[nn], t[1] = s_thresholds[nn + 1];
#pragma unroll
        for (int u = 0; u < kPixels; ++u)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            if constexpr (kResidual)  // the table part of this output's residual code
              t[e] = s_thresholds[residual_code(codes[u], b, e) * BN + nn + e];
            levels[u][e] |= entry_level(value(u, jc, e), t[e]) << (8 * b);
          }
      }
#pragma unroll
      for (int u = 0; u < kPixels; ++u) {
        if constexpr (kPool) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            levels[u][e] = __vmaxu4(levels[u][e], __shfl_xor_sync(0xffffffffu, levels[u][e], 4));
            levels[u][e] = __vmaxu4(levels[u][e], __shfl_xor_sync(0xffffffffu, levels[u][e], 8));
          }
        }
        const int channels = prm.O - o0;
        uint32_t w0, w1;
        level_plane_words(levels[u][0], levels[u][1], out.codes, quad, channels, w0, w1);
        row_sum[u] += out.row_sum_part(w0, w1);  // the same on all 4 lanes
        const int m = m0 + pixel[u];
        if (stores && m < prm.M && channels > 0 && quad < prm.oq.bits)
          out.word(quad, kPool ? m >> 2 : m, o0 / 32) = quad == 0 ? w0 : w1;
      }
    }
#pragma unroll
    for (int u = 0; u < kPixels; ++u) {
      const int m = m0 + pixel[u], row = kPool ? m >> 2 : m;
      if (!stores || quad != 0 || m >= prm.M) continue;
      publish_row_sum(prm.row_sum_ws, prm.out_row_sums, row, row_sum[u], prm.col_tiles);
    }
  }
}

}  // namespace conv_detail
}  // namespace apnn
