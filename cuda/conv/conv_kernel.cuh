// Implicit-GEMM convolution on mma.sync.m16n8k256.b1.and.popc, over packed NHWC bit-planes.
//
// The GEMM view (docs/arithmetic.md; cuda/gemm/bitplane_gemm_kernel.cuh): bit-rows are
// p planes x TM output pixels, bit-columns q planes x TN output channels, and K walks
// taps x channel words. No im2col is materialized: for each 256-bit K slice the loader computes
// the input pixel of that tap for each of its output pixels and copies the 32-byte chunk with
// cp.async; a tap that lands on padding is zero-filled, so it adds nothing to any popcount,
// which is exactly the "padding pixel = real 0" rule. The offsets of the encodings and zero
// points then need corrections over the valid taps only (per output pixel):
//   Y = sum_ij cx_i cw_j popc + ow * sum_valid Sx[pixel] + ox * sum_valid Sw[o][tap] + count*C*ox*ow
// where the valid taps form a rectangle, so sum_valid Sw is 4 lookups in a summed-area table.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>
#include <type_traits>

#include "arch/cp_async.cuh"
#include "arch/dependent_launch.cuh"
#include "arch/mma_sync.cuh"
#include "arch/swizzle.cuh"
#include "arch/wgmma.cuh"
#include "common/epilogue.h"
#include "common/epilogue_thresholds.h"
#include "common/warp_planes.cuh"
#include "conv/conv_params.h"
#include "conv/conv_register_finish.cuh"

namespace apnn {
namespace conv_detail {

constexpr int kBM = 64, kBN = 64;  // bit-rows x bit-columns per block
constexpr int kWM = 32, kWN = 32;  // per warp
constexpr int kKT = 256;           // bits per pipeline stage (one mma k-step)
constexpr int kStages = 4;
constexpr int kWarpsN = kBN / kWN;
constexpr int kThreads = (kBM / kWM) * kWarpsN * 32;
constexpr int kCpr = kKT / 128;  // 16-byte chunks per row per stage
constexpr int kStageBytes = (kBM + kBN) * kKT / 8;
constexpr int kAccStride = kBN + 4;
constexpr int kPipeBytes = kStages * kStageBytes;
constexpr int kAccBytes = kBM * kAccStride * 4;
constexpr int kSmemBytes = kPipeBytes > kAccBytes ? kPipeBytes : kAccBytes;
constexpr int kMi = kWM / 16, kNi = kWN / 8;
static_assert(kBM * kCpr == kThreads && kBN * kCpr == kThreads, "one X and one W chunk per thread per stage");

// Valid tap range [first, last) of output coordinate `out` along one axis.
__device__ __forceinline__ void tap_range(int out, int stride, int pad, int kernel, int size, int& first, int& last) {
  const int in0 = out * stride - pad;
  first = max(0, -in0);
  last = min(kernel, size - in0);
}

// This block's first output pixel and channel: tiles run along grid x, column tiles fastest
// (ConvKernelParams::col_tiles).
__device__ __forceinline__ void tile_origin(const ConvKernelParams& prm, int tm, int tn, int& m0, int& n0) {
  const int row_tile = static_cast<int>(blockIdx.x / prm.col_tiles);
  m0 = row_tile * tm;
  n0 = (static_cast<int>(blockIdx.x) - row_tile * prm.col_tiles) * tn;
}

}  // namespace conv_detail

// P, Q: compile-time plane counts, or 0 to read them from params.
template <int P, int Q>
__global__ void __launch_bounds__(conv_detail::kThreads) bitplane_conv_kernel(const ConvKernelParams prm) {
  using namespace conv_detail;
  using namespace arch;
  __shared__ __align__(128) unsigned char smem[kSmemBytes];
  __shared__ long long s_xsum[kBM];  // per output pixel: sum of input row sums over valid taps
  __shared__ int4 s_rect[kBM];       // per output pixel: valid tap rectangle (kh0, kh1, kw0, kw1)

  const int p = P ? P : prm.p;
  const int q = Q ? Q : prm.q;
  const int tm = P ? kBM / P : prm.tm;
  const int tn = Q ? kBN / Q : prm.tn;
  int m0, n0;
  conv_detail::tile_origin(prm, tm, tn, m0, n0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;

  const int tiles_per_split = (prm.k_tiles + gridDim.z - 1) / gridDim.z;
  const int kt_begin = blockIdx.z * tiles_per_split;
  const int num_tiles = max(0, min(prm.k_tiles, kt_begin + tiles_per_split) - kt_begin);

  // This thread's X slot: bit-row r (plane, output pixel), 16-byte chunk c of each stage.
  const int r = tid / kCpr, c = tid % kCpr;
  const int x_plane = r / tm, mm_load = r % tm, m_load = m0 + mm_load;
  const bool x_ok = x_plane < p && m_load < prm.M;
  int img_row0 = 0, ih0 = 0, iw0 = 0;  // first input row of the image, top-left input coordinate
  if (x_ok) {
    const int ohw = prm.OH * prm.OW;
    const int n = m_load / ohw, rem = m_load % ohw;
    img_row0 = n * prm.H;
    ih0 = (rem / prm.OW) * prm.stride_h - prm.pad_h;
    iw0 = (rem % prm.OW) * prm.stride_w - prm.pad_w;
  }
  const uint32_t* x_plane_base = prm.x_planes + static_cast<int64_t>(x_ok ? x_plane : 0) * prm.x_rows_padded * prm.cwords;
  // This thread's W slot: bit-column r (plane, output channel).
  const int w_plane = r / tn, o_load = n0 + r % tn;
  const bool w_ok = w_plane < q && o_load < prm.O;
  const uint32_t* w_row = prm.w_planes + (static_cast<int64_t>(w_ok ? w_plane : 0) * prm.w_rows_padded +
                                          (w_ok ? o_load : 0)) * prm.w_words;
  const uint32_t x_dst = swizzled<kCpr>(r, c);
  const uint32_t w_dst = kBM * kKT / 8 + swizzled<kCpr>(r, c);

  const uint32_t smem_base = smem_addr(smem);
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * kStageBytes;
    const int tap = kt / prm.tiles_per_tap;
    const int word = ((kt - tap * prm.tiles_per_tap) * kCpr + c) * 4;  // word within the tap's channels
    const int kh = tap / prm.KW, kw = tap - kh * prm.KW;
    const int ih = ih0 + kh, iw = iw0 + kw;
    const bool valid = x_ok && ih >= 0 && ih < prm.H && iw >= 0 && iw < prm.W;
    const uint32_t* xs = valid ? x_plane_base + static_cast<int64_t>((img_row0 + ih) * prm.W + iw) * prm.cwords + word
                               : prm.x_planes;
    cp_async_16(stage + x_dst, xs, valid);
    cp_async_16(stage + w_dst, w_ok ? w_row + tap * prm.cwords + word : prm.w_planes, w_ok);
  };

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_tiles) load_stage(s, kt_begin + s);
    cp_async_commit();
  }

  // While the first stages load: the per-pixel correction terms (first split only).
  if (blockIdx.z == 0 && tid < tm) {
    const int m = m0 + tid;
    int4 rect = make_int4(0, 0, 0, 0);
    long long xsum = 0;
    if (m < prm.M) {
      const int ohw = prm.OH * prm.OW;
      const int n = m / ohw, oh = (m % ohw) / prm.OW, ow = m % prm.OW;
      tap_range(oh, prm.stride_h, prm.pad_h, prm.KH, prm.H, rect.x, rect.y);
      tap_range(ow, prm.stride_w, prm.pad_w, prm.KW, prm.W, rect.z, rect.w);
      if (prm.ow != 0) {
        for (int a = rect.x; a < rect.y; ++a) {
          const int row = (n * prm.H + oh * prm.stride_h - prm.pad_h + a) * prm.W + ow * prm.stride_w - prm.pad_w;
          for (int b = rect.z; b < rect.w; ++b) xsum += prm.x_row_sums[row + b];
        }
      }
    }
    s_xsum[tid] = xsum;
    s_rect[tid] = rect;
  }

  int32_t acc[kMi][kNi][4];
#pragma unroll
  for (int i = 0; i < kMi; ++i)
#pragma unroll
    for (int j = 0; j < kNi; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  const int a_row = warp_m * kWM + (lane & 15), a_half = lane >> 4;
  const int b_row = warp_n * kWN + (lane & 7) + ((lane >> 4) << 3), b_half = (lane >> 3) & 1;

  for (int t = 0; t < num_tiles; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = t + kStages - 1;
    if (next < num_tiles) load_stage(next % kStages, kt_begin + next);
    cp_async_commit();

    const uint32_t stage = smem_base + (t % kStages) * kStageBytes;
    const uint32_t x_tile = stage, w_tile = stage + kBM * kKT / 8;
    uint32_t a[kMi][4];
    uint32_t b[kNi][2];
#pragma unroll
    for (int i = 0; i < kMi; ++i) ldmatrix_x4(a[i], x_tile + swizzled<kCpr>(a_row + i * 16, a_half));
#pragma unroll
    for (int j = 0; j < kNi; j += 2) {
      uint32_t rr[4];
      ldmatrix_x4(rr, w_tile + swizzled<kCpr>(b_row + j * 8, b_half));
      b[j][0] = rr[0];
      b[j][1] = rr[1];
      b[j + 1][0] = rr[2];
      b[j + 1][1] = rr[3];
    }
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
      for (int j = 0; j < kNi; ++j) mma_b1_and(acc[i][j], a[i], b[j][0], b[j][1]);
  }
  cp_async_wait<0>();
  __syncthreads();

  // Popcount tile -> shared memory.
  int32_t* tile = reinterpret_cast<int32_t*>(smem);
  const int g = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int i = 0; i < kMi; ++i)
#pragma unroll
    for (int j = 0; j < kNi; ++j) {
      const int row = warp_m * kWM + i * 16 + g, col = warp_n * kWN + j * 8 + tig * 2;
      *reinterpret_cast<int2*>(&tile[row * kAccStride + col]) = make_int2(acc[i][j][0], acc[i][j][1]);
      *reinterpret_cast<int2*>(&tile[(row + 8) * kAccStride + col]) = make_int2(acc[i][j][2], acc[i][j][3]);
    }
  __syncthreads();

  // Combine plane pairs, add the corrections, then store or run the epilogue.
  const bool first_split = blockIdx.z == 0;
  const int sat_w = prm.KW + 1, sat_stride = (prm.KH + 1) * (prm.KW + 1);
  for (int idx = tid; idx < tm * tn; idx += kThreads) {
    const int mm = idx / tn, nn = idx % tn;
    const int m = m0 + mm, o = n0 + nn;
    if (m >= prm.M || o >= prm.O) continue;
    int64_t sum = 0;
#pragma unroll
    for (int i = 0; i < (P ? P : 8); ++i) {
      if (!P && i >= p) break;
      int64_t row = 0;
#pragma unroll
      for (int j = 0; j < (Q ? Q : 8); ++j) {
        if (!Q && j >= q) break;
        row += static_cast<int64_t>(prm.cw[j]) * tile[(i * tm + mm) * kAccStride + j * tn + nn];
      }
      sum += prm.cx[i] * row;
    }
    if (first_split) {
      const int4 rect = s_rect[mm];
      const int64_t count = static_cast<int64_t>(max(0, rect.y - rect.x)) * max(0, rect.w - rect.z);
      int64_t sw = 0;
      if (prm.ox != 0 && count > 0) {
        const int32_t* sat = prm.w_sat + static_cast<int64_t>(o) * sat_stride;
        sw = static_cast<int64_t>(sat[rect.y * sat_w + rect.w]) - sat[rect.x * sat_w + rect.w] -
             sat[rect.y * sat_w + rect.z] + sat[rect.x * sat_w + rect.z];
      }
      sum += prm.ow * s_xsum[mm] + prm.ox * sw + count * prm.C * prm.ox * prm.ow;
    }
    const int32_t y = static_cast<int32_t>(sum);
    if (prm.mode == kConvOutInt32) {
      int32_t* out = prm.y + static_cast<int64_t>(m) * prm.O + o;
      if (gridDim.z == 1) {
        *out = y;
      } else {
        atomicAdd(out, y);
      }
    } else if (prm.mode == kConvOutFusedFloat) {
      prm.y_float[static_cast<int64_t>(m) * prm.O + o] = epilogue_pre_pool(prm.ep, prm.res, y, m, o);
    } else {
      // Only this thread reads tile slot (mm, nn) (plane pair 0, 0), so it can hold the code.
      tile[mm * kAccStride + nn] = requantize(prm.oq, prm.ep.out_scale, epilogue_pre_pool(prm.ep, prm.res, y, m, o));
    }
  }
  if (prm.mode != kConvOutFusedPacked) return;
  __syncthreads();

  // Pack the codes: one thread per (pixel, 32-channel word); tn is a multiple of 32 here.
  const int groups = tn / 32;
  for (int idx = tid; idx < tm * groups; idx += kThreads) {
    const int mm = idx / groups, grp = idx % groups;
    const int m = m0 + mm, o0 = n0 + grp * 32;
    if (m >= prm.M || o0 >= prm.O) continue;
    uint32_t words[kEpilogueMaxPlanes] = {};
    int32_t part = 0;
    const int real = min(32, prm.O - o0);
    for (int bit = 0; bit < real; ++bit) {
      const int32_t code = tile[mm * kAccStride + grp * 32 + bit];
      const uint32_t bits = code_bits(code, prm.oq.bits, prm.oq.encoding);
#pragma unroll
      for (int b = 0; b < kEpilogueMaxPlanes; ++b) words[b] |= ((bits >> b) & 1u) << bit;
      part += plane_part(code, prm.oq.encoding);
    }
    for (int b = 0; b < prm.oq.bits; ++b)
      prm.out_planes[(b * prm.out_rows_padded + m) * prm.out_words + o0 / 32] = words[b];
    atomicAdd(&prm.out_row_sums[m], part);
  }
}

// The separate epilogue: one warp per pooled output pixel, a lane per channel of each group of
// 32, so the int32 rows are read coalesced and each plane word is one warp ballot.
__global__ void conv_epilogue_kernel(const EpilogueKernelParams prm) {
  const int lane = threadIdx.x & 31;
  const int pm = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (pm >= prm.pooled_pixels) return;  // whole warps exit together
  const int n = pm / (prm.PH * prm.PW), py = (pm / prm.PW) % prm.PH, px = pm % prm.PW;
  const int k = prm.ep.pool_size, s = prm.ep.pool_stride;
  const int m0 = (n * prm.OH + py * s) * prm.OW + px * s;  // top-left pixel of the window
  int32_t part = 0;
  // The threshold form (epilogue_thresholds.h): no float math; a max pool keeps the top level.
  // A caller's table with a packed residual picks the table of its code; the library's own tables
  // keep the float steps with a residual here (their fused kernels use the tables).
  const bool residual = prm.res.int32_values != nullptr || prm.res.planes != nullptr;
  const bool residual_tables =
      prm.ep.thresholds_only && prm.res.planes != nullptr && prm.ep.threshold_residual_codes > 0;
  const int32_t* thresholds =
      prm.y_float || (residual && !residual_tables) || prm.ep.pool == APNN_POOL_AVG ? nullptr : prm.ep.thresholds;
  const int64_t table_size = static_cast<int64_t>(prm.ep.threshold_levels + 2) * prm.O;
  for (int o0 = 0; o0 < prm.O; o0 += 32) {
    const int o = o0 + lane;
    const bool valid = o < prm.O;
    if (thresholds) {
      uint32_t bits = 0;
      if (valid) {
        int32_t level = 0;
        for (int i = 0; i < k * k; ++i) {
          const int m = m0 + (i / k) * prm.OW + i % k;
          const int32_t y = prm.y[static_cast<int64_t>(m) * prm.O + o];
          const int32_t* table = thresholds + (residual_tables ? residual_table_index(prm.res, m, o) * table_size : 0);
          const int32_t l = threshold_level(table, prm.O, prm.ep.threshold_levels, o, y);
          level = i == 0 || l > level ? l : level;
        }
        const int32_t code = code_of_level(prm.oq, level);
        bits = code_bits(code, prm.oq.bits, prm.oq.encoding);
        part += plane_part(code, prm.oq.encoding);
      }
      const uint32_t mine = warp_plane_word(bits, prm.oq.bits, lane);
      if (lane < prm.oq.bits) prm.out_planes[(lane * prm.out_rows_padded + pm) * prm.out_words + o0 / 32] = mine;
      continue;
    }
    float value = 0.0f;
    if (valid) {
      const float scale = prm.ep.scale[o], bias = prm.ep.bias[o];
      float acc = 0.0f;
      for (int i = 0; i < k * k; ++i) {
        const int m = m0 + (i / k) * prm.OW + i % k;
        const int32_t y = prm.y[static_cast<int64_t>(m) * prm.O + o];
        acc = pool_step(prm.ep.pool, acc, epilogue_pre_pool_sb(prm.ep, prm.res, y, m, o, scale, bias), i);
      }
      value = pool_finish(prm.ep.pool, acc, k * k);
    }
    if (prm.y_float) {
      if (valid) prm.y_float[static_cast<int64_t>(pm) * prm.O + o] = value;
      continue;
    }
    uint32_t bits = 0;
    if (valid) {
      const int32_t code = requantize(prm.oq, prm.ep.out_scale, value);
      bits = code_bits(code, prm.oq.bits, prm.oq.encoding);
      part += plane_part(code, prm.oq.encoding);
    }
    const uint32_t mine = warp_plane_word(bits, prm.oq.bits, lane);
    if (lane < prm.oq.bits) prm.out_planes[(lane * prm.out_rows_padded + pm) * prm.out_words + o0 / 32] = mine;
  }
  if (prm.y_float) return;
  part = warp_sum(part);
  if (lane == 0) prm.out_row_sums[pm] = part;
}

// ---------------------------------------------------------------------------------------
// The tiled convolution (sm_90 with thread-block clusters; the kernel above is the fallback).
//
// K is one flat sequence of 16-byte chunks (tap-major, then channel words), so a stage of KT
// bits may span several taps of narrow layers; each thread copies one fixed chunk column of
// every stage, so the tap decode is once per stage. Split K runs along grid.z as one cluster
// per output tile: after the main loop every block parks its popcount tile in shared memory
// and block r reduces a share of the tile's pixels by reading all blocks' tiles through
// distributed shared memory, then applies the corrections and the epilogue directly (int32,
// float, or packed codes built with warp ballots: lane = channel). A packed output's row sums
// over several column tiles meet in a zeroed per-pixel workspace word, which the last block to
// add writes out and zeroes again (row_sum_parts.cuh): no memset and no second kernel.
namespace conv_detail {

template <int BM, int BN, int WM, int WN, int KT, int STAGES>
struct ConvTile {
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN, kWarps = kWarpsM * kWarpsN;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kCpr = KT / 128;
  static constexpr int kStageBytes = (BM + BN) * KT / 8;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  static constexpr int kAccStride = BN + 4;
  static constexpr int kAccBytes = BM * kAccStride * 4;
  static constexpr int kMainBytes = kPipeBytes > kAccBytes ? kPipeBytes : kAccBytes;
  // + per-pixel xsum, tap rectangle and decoded geometry, per-channel scale and bias and
  // threshold table; a launch whose table has one part per residual code asks for
  // kResidualTablesBytes more: the other parts and the block's residual words (<= 2 planes x
  // BN / 32 words per pixel).
  // + 1024: the stages start at the next 1024-byte boundary (the wgmma swizzle is applied to
  // absolute shared-memory addresses).
  static constexpr int kSmemBytes = kMainBytes + BM * (4 + 16 + 16) + BN * 8 + BN * 4 * kThresholdRows + 1024;
  static constexpr int kResidualTablesBytes = (kMaxResidualCodes - 1) * BN * 4 * kThresholdRows + BM * 2 * (BN / 32) * 4;
  static constexpr int kLoadsX = BM * kCpr / kThreads, kLoadsW = BN * kCpr / kThreads;
  static constexpr int kMi = WM / 16, kNi = WN / 8;
  static_assert(kCpr == 2 || kCpr == 4 || kCpr == 8, "KT must be 256, 512 or 1024 bits");
  static_assert(BM * kCpr % kThreads == 0 && BN * kCpr % kThreads == 0, "loads must divide evenly");
  static_assert(kThreads % kCpr == 0, "a thread keeps one chunk column");
  static_assert(kMainBytes % 16 == 0 && BN % 32 == 0, "alignment");
};

// Output pixel m of a tiled launch -> (image n, row oh, column ow). With a fused 2x2 / 2 max
// pool (prm.pool_fused) the launch walks the pixels window by window, m = 4 * pooled pixel +
// window offset, so every block holds whole windows and the pool happens in the finish.
__device__ __forceinline__ void conv_pixel(const ConvKernelParams& prm, int m, int& n, int& oh, int& ow) {
  if (prm.pool_fused) {
    const int pm = m >> 2, offset = m & 3, pooled_hw = prm.PH * prm.PW;
    n = pm / pooled_hw;
    const int rem = pm - n * pooled_hw;
    oh = (rem / prm.PW) * 2 + (offset >> 1);
    ow = (rem % prm.PW) * 2 + (offset & 1);
    return;
  }
  const int ohw = prm.OH * prm.OW;
  n = m / ohw;
  const int rem = m - n * ohw;
  oh = rem / prm.OW;
  ow = rem - oh * prm.OW;
}

}  // namespace conv_detail

// kTapPacked: the weights' taps are packed back to back (ConvWeights::tap_words, C a multiple
// of 64 below 256), so K runs over taps x C bits with no per-tap padding; the copies are then
// 8 bytes (2 of them fill one 16-byte chunk of the swizzled layout) and a tap spans
// tap_words / 2 of them.
// kMinBlocks: blocks per SM the registers must allow (__launch_bounds__); short-K layers are
// latency-bound and need resident blocks more than registers.
template <int BM, int BN, int WM, int WN, int KT, int STAGES, int kMinBlocks, int P, int Q, bool kTapPacked>
__global__ void __launch_bounds__(conv_detail::ConvTile<BM, BN, WM, WN, KT, STAGES>::kThreads, kMinBlocks)
    conv_tile_kernel(const ConvKernelParams prm) {
  using Cfg = conv_detail::ConvTile<BM, BN, WM, WN, KT, STAGES>;
  using namespace conv_detail;
  using namespace arch;
  constexpr int kCpr = Cfg::kCpr;
  constexpr int kCopyBytes = kTapPacked ? 8 : 16;
  constexpr int kCopiesPerRow = KT / 8 / kCopyBytes;  // copies per bit-row per stage
  constexpr int kLoadsX = BM * kCopiesPerRow / Cfg::kThreads, kLoadsW = BN * kCopiesPerRow / Cfg::kThreads;
  static_assert(BM * kCopiesPerRow % Cfg::kThreads == 0 && BN * kCopiesPerRow % Cfg::kThreads == 0, "even loads");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
  uint32_t* s_xsum = reinterpret_cast<uint32_t*>(smem + Cfg::kMainBytes);
  int4* s_rect = reinterpret_cast<int4*>(smem + Cfg::kMainBytes + BM * 4);
  int4* s_pixel = reinterpret_cast<int4*>(smem + Cfg::kMainBytes + BM * 20);
  float* s_scale = reinterpret_cast<float*>(smem + Cfg::kMainBytes + BM * 36);
  float* s_bias = s_scale + BN;
  int32_t* s_thresholds = reinterpret_cast<int32_t*>(s_bias + BN);  // [residual code] x kThresholdRows x BN

  const int p = P ? P : prm.p;
  const int q = Q ? Q : prm.q;
  const int tm = P ? BM / P : prm.tm;
  const int tn = Q ? BN / Q : prm.tn;
  int m0, n0;
  conv_detail::tile_origin(prm, tm, tn, m0, n0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int ranks = gridDim.z, rank = blockIdx.z;

  // The finish from the accumulators (conv_register_finish.cuh), where the dispatcher chose it;
  // its code exists only in sm_90a builds, for the compile-time plane counts 1 and 2.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr bool kRegisterFinishBuilt = (P == 1 || P == 2) && (Q == 1 || Q == 2);
#else
  constexpr bool kRegisterFinishBuilt = false;
#endif
  const bool use_register_finish = kRegisterFinishBuilt && prm.register_finish != 0;

  const int tiles_per_split = (prm.k_tiles + ranks - 1) / ranks;
  const int kt_begin = rank * tiles_per_split;
  const int num_tiles = max(0, min(prm.k_tiles, kt_begin + tiles_per_split) - kt_begin);

  // The tile's pixels, decoded once per block: conv_pixel's divisions, once per load row and
  // again for the correction terms, were about a quarter of a short-K block's instructions (ncu,
  // VGG's 224x224x64 conv). Per tile pixel: n * H * W, the first input row and column; and the
  // rectangle of valid taps.
  for (int i = tid; i < tm; i += Cfg::kThreads) {
    const int m = m0 + i;
    int4 pixel = make_int4(0, -(1 << 24), 0, 0);  // an input row no tap reaches: every tap invalid
    int4 rect = make_int4(0, 0, 0, 0);
    if (m < prm.M) {
      int n, oh, ow;
      conv_pixel(prm, m, n, oh, ow);
      pixel = make_int4(n * prm.H * prm.W, oh * prm.stride_h - prm.pad_h, ow * prm.stride_w - prm.pad_w, 0);
      tap_range(oh, prm.stride_h, prm.pad_h, prm.KH, prm.H, rect.x, rect.y);
      tap_range(ow, prm.stride_w, prm.pad_w, prm.KW, prm.W, rect.z, rect.w);
    }
    s_pixel[i] = pixel;
    s_rect[i] = rect;
  }
  __syncthreads();

  const int c = tid % kCopiesPerRow;  // this thread's copy column of every stage
  // Byte offset of copy column c of bit-row r in a stage's swizzled tile.
  auto copy_dst = [&](int r) -> uint32_t {
    return kTapPacked ? swizzled<kCpr>(r, c / 2) + (c % 2) * 8 : swizzled<kCpr>(r, c);
  };
  const uint32_t* x_base[kLoadsX];
  int x_ih0[kLoadsX], x_iw0[kLoadsX];
  uint32_t x_dst[kLoadsX];
#pragma unroll
  for (int l = 0; l < kLoadsX; ++l) {
    const int r = (tid + l * Cfg::kThreads) / kCopiesPerRow;
    int plane, mm;
    tile_plane<P>(r, tm, plane, mm);
    const int4 pixel = plane < p ? s_pixel[mm] : make_int4(0, -(1 << 24), 0, 0);
    x_ih0[l] = pixel.y;
    x_iw0[l] = pixel.z;
    x_base[l] = prm.x_planes + (static_cast<int64_t>(plane < p ? plane : 0) * prm.x_rows_padded + pixel.x) * prm.cwords;
    x_dst[l] = copy_dst(r);
  }
  constexpr int kCopyWords = kCopyBytes / 4;
  const uint32_t* w_src[kLoadsW];
  bool w_ok[kLoadsW];
  uint32_t w_dst[kLoadsW];
#pragma unroll
  for (int l = 0; l < kLoadsW; ++l) {
    const int r = (tid + l * Cfg::kThreads) / kCopiesPerRow;
    int plane, nn;
    tile_plane<Q>(r, tn, plane, nn);
    const int o = n0 + nn;
    w_ok[l] = plane < q && o < prm.O;
    w_src[l] = prm.w_planes +
               (w_ok[l] ? (static_cast<int64_t>(plane) * prm.w_rows_padded + o) * prm.w_words + c * kCopyWords : 0);
    w_dst[l] = BM * KT / 8 + copy_dst(r);
  }
  const int taps = prm.KH * prm.KW;
  const int copies_per_tap = (kTapPacked ? prm.tap_words : prm.cwords) / kCopyWords;

  const uint32_t smem_base = smem_addr(smem);
  // One stage: this thread's copy column c of each of its X and W rows. K is taps x copies per
  // tap (16-byte chunks of the padded channel row, or 8-byte copies of packed taps); past the
  // last tap the copies are zero-filled.
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * Cfg::kStageBytes;
    const int kc = kt * kCopiesPerRow + c;  // copy index along K
    const int tap = kc / copies_per_tap;
    const int word = (kc - tap * copies_per_tap) * kCopyWords;  // word within the tap's channels
    const bool k_ok = tap < taps;
    const int kh = tap / prm.KW, kw = tap - kh * prm.KW;
#pragma unroll
    for (int l = 0; l < kLoadsX; ++l) {
      const int ih = x_ih0[l] + kh, iw = x_iw0[l] + kw;
      const bool valid = k_ok && static_cast<unsigned>(ih) < static_cast<unsigned>(prm.H) &&
                         static_cast<unsigned>(iw) < static_cast<unsigned>(prm.W);
      const uint32_t* src = valid ? x_base[l] + static_cast<int64_t>(ih * prm.W + iw) * prm.cwords + word : prm.x_planes;
      cp_async_bytes<kCopyBytes>(stage + x_dst[l], src, valid);
    }
    const bool w_in_row = kc * kCopyWords < prm.w_words;
#pragma unroll
    for (int l = 0; l < kLoadsW; ++l) {
      const bool valid = w_ok[l] && w_in_row;
      cp_async_bytes<kCopyBytes>(
          stage + w_dst[l], valid ? w_src[l] + static_cast<int64_t>(kt) * kCopiesPerRow * kCopyWords : prm.w_planes, valid);
    }
  };

  const bool residual = prm.res.int32_values != nullptr || prm.res.planes != nullptr;
  // A table applies without residual, or with a packed one when it has a part per residual code.
  const bool thresholds = prm.mode == kConvOutFusedPacked && prm.ep.thresholds != nullptr &&
                          (!residual || (prm.ep.threshold_residual_codes > 0 && prm.res.planes != nullptr));
  // The register finish's threshold entries, one per (residual code, channel), BN apart: their
  // loads are issued before the wait for the previous kernel and the stage copies, and stored
  // after the correction terms, so they wait out no round trip of their own.
  constexpr int kEntryLoads = (kMaxResidualCodes * BN + Cfg::kThreads - 1) / Cfg::kThreads;
  const bool entries_here = thresholds && use_register_finish;
  const int entry_count = entries_here ? (residual ? prm.ep.threshold_residual_codes : 1) * tn : 0;
  int4 entry_ahead[kEntryLoads];
#pragma unroll
  for (int k = 0; k < kEntryLoads; ++k) {
    const int i = tid + k * Cfg::kThreads;
    if (i >= entry_count) break;
    const int part = i / tn;
    entry_ahead[k] = table_entry(prm.ep, prm.O, part, n0 + i - part * tn);
  }
  // Everything above reads only this layer's constants; the activations, row sums and residual
  // are the previous kernels' (dependent launch, arch/dependent_launch.cuh).
  arch::wait_for_previous_kernels();
  arch::allow_next_kernel_start();

  // Stages loaded ahead of the MMAs. The wgmma loop (sm_90a) with 4+ stages keeps one group of
  // wgmmas in flight while it refills, so it refills the slot of two stages back, one stage less
  // far ahead.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kAhead = STAGES >= 4 ? STAGES - 2 : STAGES - 1;
#else
  constexpr int kAhead = STAGES - 1;
#endif
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < num_tiles) load_stage(s, kt_begin + s);
    cp_async_commit();
  }

  // While the first stages load: the per-pixel correction terms. A group of `team` lanes
  // shares each pixel's valid taps (independent loads, not one chain per pixel), then adds up.
  {
    int team = 1;
    while (team < 32 && team * 2 * tm <= Cfg::kThreads) team *= 2;
    const int pixels_per_pass = Cfg::kThreads / team, t = tid % team;
    for (int base = 0; base < tm; base += pixels_per_pass) {  // block-uniform trip count
      const int i = base + tid / team;
      uint32_t xsum = 0;
      if (i < tm && prm.ow != 0) {
        const int4 rect = s_rect[i];  // all zero past the last pixel: no valid taps
        const int width = rect.w - rect.z, valid_taps = max(0, rect.y - rect.x) * max(0, width);
        const int4 pixel = s_pixel[i];
        const int row0 = pixel.x + (pixel.y + rect.x) * prm.W + pixel.z;
        for (int v = t; v < valid_taps; v += team) {
          const int a = v / width, b = rect.z + v - a * width;
          xsum += static_cast<uint32_t>(__ldg(prm.x_row_sums + row0 + a * prm.W + b));
        }
      }
      for (int offset = team / 2; offset > 0; offset /= 2) xsum += __shfl_xor_sync(0xffffffffu, xsum, offset);
      if (i < tm && t == 0) s_xsum[i] = xsum;
    }
  }
#pragma unroll
  for (int k = 0; k < kEntryLoads; ++k) {
    const int i = tid + k * Cfg::kThreads;
    if (i >= entry_count) break;
    const int part = i / tn;
    reinterpret_cast<int4*>(s_thresholds)[part * BN + i - part * tn] = entry_ahead[k];
  }
  // Scale and bias: read by the float epilogue only (a table has them folded in).
  if (prm.mode != kConvOutInt32 && !thresholds) {
    for (int i = tid; i < tn; i += Cfg::kThreads) {
      const int o = n0 + i;
      s_scale[i] = o < prm.O ? prm.ep.scale[o] : 0.0f;
      s_bias[i] = o < prm.O ? prm.ep.bias[o] : 0.0f;
    }
  }
  if (thresholds && !use_register_finish) {
    const int rows = prm.ep.threshold_levels + 2, parts = residual ? prm.ep.threshold_residual_codes : 1;
    for (int i = tid; i < parts * rows * tn; i += Cfg::kThreads) {
      const int row = i / tn, nn = i - row * tn, o = n0 + nn;  // row: part * rows + table row
      const int part = row / rows;
      s_thresholds[(part * kThresholdRows + row - part * rows) * BN + nn] =
          o < prm.O ? prm.ep.thresholds[static_cast<int64_t>(row) * prm.O + o] : 0;
    }
  }
  // The residual's plane words of this block (table form): read now, while the stages load,
  // instead of one dependent global load per plane in every step of the finish.
  uint32_t* s_residual = reinterpret_cast<uint32_t*>(s_thresholds + kMaxResidualCodes * kThresholdRows * BN);
  constexpr int kGroupsMax = BN / 32;
  if (thresholds && residual && !use_register_finish) {
    const int groups_here = (tn + 31) / 32;
    for (int i = tid; i < tm * 2 * groups_here; i += Cfg::kThreads) {
      const int mm = i / (2 * groups_here), b = (i / groups_here) % 2, j = i % groups_here;
      const int m = m0 + mm, o0 = n0 + j * 32;
      s_residual[(mm * 2 + b) * kGroupsMax + j] =
          b < prm.res.bits && m < prm.M && o0 < prm.O
              ? prm.res.planes[(b * prm.res.rows_padded + m) * prm.res.words + o0 / 32] : 0u;
    }
  }

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  // sm_90a: warpgroup MMAs read the swizzled stages directly (gemm/bitplane_gemm_wgmma_kernel.cuh);
  // warpgroup g owns bit-rows kMTiles * 64 * g .. of the tile, all BN bit-columns.
  {
    using namespace arch;
    constexpr int kGroups = Cfg::kThreads / 128, kMTiles = BM / 64 / kGroups;
    static_assert(BM % (64 * kGroups) == 0 && Cfg::kThreads % 128 == 0, "whole warpgroups of 64-row tiles");
    const int group = tid / 128;
    int32_t acc[kMTiles][BN / 2];
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
      for (int e = 0; e < BN / 2; ++e) acc[i][e] = 0;
    for (int t = 0; t < num_tiles; ++t) {
      cp_async_wait<kAhead - 1>();
      fence_proxy_async();  // this thread's copies, visible to the wgmmas' async proxy
      __syncthreads();      // every copy of stage t; every warpgroup done with the slot refilled next
      const int next = t + kAhead;
      if (next < num_tiles) load_stage(next % STAGES, kt_begin + next);
      cp_async_commit();
      const uint32_t stage = smem_base + (t % STAGES) * Cfg::kStageBytes;
      const uint32_t x_tile = stage + group * kMTiles * 64 * (KT / 8), w_tile = stage + BM * KT / 8;
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < KT / 256; ++ks)
#pragma unroll
        for (int i = 0; i < kMTiles; ++i)
          wgmma_b1_and<BN>(acc[i], swizzled_descriptor<KT / 8>(x_tile + i * 64 * (KT / 8) + ks * 32),
                           swizzled_descriptor<KT / 8>(w_tile + ks * 32));
      wgmma_commit();
      wgmma_wait<kAhead == STAGES - 1 ? 0 : 1>();  // with 1: stage t - 1's slot is free
    }
    wgmma_wait<0>();
    cp_async_wait<0>();
    __syncthreads();
    if constexpr (kRegisterFinishBuilt) {
      if (use_register_finish) {
        const int first_row = group * kMTiles * 64 + ((tid / 32) % 4) * 16;
        const int4* entries = reinterpret_cast<const int4*>(s_thresholds);
        if (prm.mode == kConvOutInt32) {
          register_finish<BN, kMTiles, P, Q, false, false, false>(prm, acc, first_row, m0, n0, s_xsum, entries);
        } else if (prm.pool_fused) {
          register_finish<BN, kMTiles, P, Q, true, true, false>(prm, acc, first_row, m0, n0, s_xsum, entries);
        } else if (residual) {
          register_finish<BN, kMTiles, P, Q, true, false, true>(prm, acc, first_row, m0, n0, s_xsum, entries);
        } else {
          register_finish<BN, kMTiles, P, Q, true, false, false>(prm, acc, first_row, m0, n0, s_xsum, entries);
        }
        return;
      }
    }
    // D fragments (PTX ISA): warp w of the group holds rows 16w + lane/4 (+8) of each 64-row
    // tile; register 4j + 2h + e is column 8j + 2(lane%4) + e of row half h.
    int32_t* acc_tile = reinterpret_cast<int32_t*>(smem);
    const int row0 = group * kMTiles * 64 + ((tid / 32) % 4) * 16 + (tid & 31) / 4, col0 = 2 * (tid & 3);
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          *reinterpret_cast<int2*>(&acc_tile[(row0 + i * 64 + 8 * h) * Cfg::kAccStride + 8 * j + col0]) =
              make_int2(acc[i][4 * j + 2 * h], acc[i][4 * j + 2 * h + 1]);
  }
  int32_t* tile = reinterpret_cast<int32_t*>(smem);
#else
  int32_t acc[Cfg::kMi][Cfg::kNi][4];
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNi; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

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
        uint32_t rr[4];
        ldmatrix_x4(rr, w_tile + swizzled<kCpr>(b_row + j * 8, 2 * ks + b_half));
        b[j][0] = rr[0];
        b[j][1] = rr[1];
        b[j + 1][0] = rr[2];
        b[j + 1][1] = rr[3];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNi; ++j) mma_b1_and(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  int32_t* tile = reinterpret_cast<int32_t*>(smem);
  {
    const int g = lane >> 2, tig = lane & 3;
#pragma unroll
    for (int i = 0; i < Cfg::kMi; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::kNi; ++j) {
        const int row = warp_m * WM + i * 16 + g, col = warp_n * WN + j * 8 + tig * 2;
        *reinterpret_cast<int2*>(&tile[row * Cfg::kAccStride + col]) = make_int2(acc[i][j][0], acc[i][j][1]);
        *reinterpret_cast<int2*>(&tile[(row + 8) * Cfg::kAccStride + col]) = make_int2(acc[i][j][2], acc[i][j][3]);
      }
  }
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  if (ranks > 1) {
    cluster.sync();  // every block's popcount tile is complete
  } else {
    __syncthreads();
  }
  auto rank_tile = [&](int r) -> const int32_t* { return ranks > 1 ? cluster.map_shared_rank(tile, r) : tile; };
#else
  __syncthreads();  // launched without clusters: ranks == 1
  auto rank_tile = [&](int) -> const int32_t* { return tile; };
#endif

  // Reduce, correct, and finish: warp per output pixel, lane per channel of each 32-group.
  // The output mode and whether a residual is read are template arguments of the loop below,
  // so each launch runs a short loop without dead branches (ncu: the runtime-branching loop
  // spent most of its ~140 instructions per output on control flow).
  const uint32_t ox = static_cast<uint32_t>(prm.ox), ow_off = static_cast<uint32_t>(prm.ow);
  const int sat_w = prm.KW + 1, sat_stride = (prm.KH + 1) * (prm.KW + 1);
  const int groups = (tn + 31) / 32;
  // kSplit: popcount tiles come from the cluster (generic loads) or only from this block's
  // shared memory; kSat: the weight-offset term (ox != 0) is needed; kPool: a fused 2x2 max
  // pool, so an output row is a window of 4 consecutive tile pixels (conv_pixel).
  auto finish = [&](auto mode_tag, auto residual_tag, auto thresholds_tag, auto split_tag, auto sat_tag,
                    auto pool_tag) {
    constexpr int kMode = decltype(mode_tag)::value;
    constexpr bool kResidual = decltype(residual_tag)::value;
    constexpr bool kThresholds = decltype(thresholds_tag)::value;
    constexpr bool kSplit = decltype(split_tag)::value;
    constexpr bool kSat = decltype(sat_tag)::value;
    constexpr int kWindow = decltype(pool_tag)::value ? 4 : 1;
    static_assert(kWindow == 1 || (kMode == kConvOutFusedPacked && !kResidual), "pools fuse into packed outputs");
    // Plane words of the packed output: row m of plane b at out_row[b * plane_words].
    const int64_t plane_words = prm.out_rows_padded * prm.out_words;
    for (int row = rank * Cfg::kWarps + warp; row < tm / kWindow; row += ranks * Cfg::kWarps) {
      const int m = m0 / kWindow + row;  // output row (a pooled pixel with kWindow 4)
      if (m * kWindow >= prm.M) break;   // warp-uniform, and so is every later row
      // The corrections of each pixel of the window.
      int4 rect[kWindow];
      uint32_t corr[kWindow];
      bool sat_terms[kWindow];
#pragma unroll
      for (int w = 0; w < kWindow; ++w) {
        const int mm = row * kWindow + w;
        rect[w] = s_rect[mm];
        const int count = max(0, rect[w].y - rect[w].x) * max(0, rect[w].w - rect[w].z);
        corr[w] = ow_off * s_xsum[mm] + static_cast<uint32_t>(count) * static_cast<uint32_t>(prm.C) * ox * ow_off;
        sat_terms[w] = kSat && ox != 0 && count > 0;
      }
      uint32_t* out_row = prm.out_planes + m * prm.out_words;
      int32_t part = 0;
      auto output_group = [&](int j) {
        const int nn = j * 32 + lane, o = n0 + nn;
        const bool valid = nn < tn && o < prm.O;
        // The convolution value of pixel `w` of the window at channel o.
        auto conv_value = [&](int w) -> int32_t {
          uint32_t sum = corr[w];
          const int mm = row * kWindow + w;
          auto add_planes = [&](const int32_t* pt) {
#pragma unroll
            for (int i = 0; i < (P ? P : 8); ++i) {
              if (!P && i >= p) break;
              const int32_t* row_of_plane = pt + tile_index<P>(i, mm, tm) * Cfg::kAccStride;
              uint32_t plane_row = 0;
#pragma unroll
              for (int jj = 0; jj < (Q ? Q : 8); ++jj) {
                if (!Q && jj >= q) break;
                plane_row += static_cast<uint32_t>(prm.cw[jj]) * static_cast<uint32_t>(row_of_plane[tile_index<Q>(jj, nn, tn)]);
              }
              sum += static_cast<uint32_t>(prm.cx[i]) * plane_row;
            }
          };
          if constexpr (kSplit) {
            for (int r = 0; r < ranks; ++r) add_planes(rank_tile(r));
          } else {
            add_planes(tile);  // shared-memory loads
          }
          if (sat_terms[w]) {
            const int4 rc = rect[w];
            const int32_t* sat = prm.w_sat + static_cast<int64_t>(o) * sat_stride;
            const uint32_t sw = static_cast<uint32_t>(sat[rc.y * sat_w + rc.w]) - sat[rc.x * sat_w + rc.w] -
                                sat[rc.y * sat_w + rc.z] + sat[rc.x * sat_w + rc.z];
            sum += ox * sw;
          }
          return static_cast<int32_t>(sum);
        };
        if constexpr (kMode == kConvOutInt32) {
          if (valid) prm.y[static_cast<int64_t>(m) * prm.O + o] = conv_value(0);
        } else if constexpr (kMode == kConvOutFusedFloat) {
          if (valid)
            prm.y_float[static_cast<int64_t>(m) * prm.O + o] =
                epilogue_affine<kResidual>(prm.ep, prm.res, conv_value(0), m, o, s_scale[nn], s_bias[nn]);
        } else {
          uint32_t bits = 0;
          if (valid) {
            int32_t code;
            if constexpr (kThresholds) {
              // The level is monotone in the final value, so the max pool keeps the top level.
              const int32_t* t = s_thresholds + nn;
              if constexpr (kResidual) {  // the part of the table for this residual code
                const uint32_t* words = s_residual + row * 2 * kGroupsMax + j;  // n0 % 32 == 0: bit = lane
                const int residual_code = static_cast<int>((words[0] >> lane) & 1u) |
                                          static_cast<int>((words[kGroupsMax] >> lane) & 1u) << 1;
                t += residual_code * kThresholdRows * BN;
              }
              int32_t level = 0;
#pragma unroll
              for (int w = 0; w < kWindow; ++w) {
                const int32_t y = conv_value(w);
                int passed = 0;
#pragma unroll
                for (int k = 0; k < kMaxThresholdLevels; ++k)
                  passed += k < prm.ep.threshold_levels && y >= t[(k + 2) * BN] ? 1 : 0;
                const int32_t l = t[0] + t[BN] * passed;
                level = w == 0 || l > level ? l : level;
              }
              code = code_of_level(prm.oq, level);
            } else {
              float value = 0.0f;
#pragma unroll
              for (int w = 0; w < kWindow; ++w) {
                const float v = epilogue_affine<kResidual>(prm.ep, prm.res, conv_value(w), m, o, s_scale[nn], s_bias[nn]);
                value = pool_step(APNN_POOL_MAX, value, v, w);
              }
              code = requantize(prm.oq, prm.ep.out_scale, value);
            }
            bits = code_bits(code, prm.oq.bits, prm.oq.encoding);
            part += plane_part(code, prm.oq.encoding);
          }
          // Threshold tables exist only for outputs of at most 2 bits: 2 ballots, not 8.
          constexpr int kMaxOutPlanes = kThresholds ? 2 : kEpilogueMaxPlanes;
          const uint32_t mine = warp_plane_word<kMaxOutPlanes>(bits, prm.oq.bits, lane);
          const int o0 = n0 + j * 32;  // n0 is a multiple of 32 here (tn % 32 == 0)
          if (lane < prm.oq.bits && o0 < prm.O) out_row[lane * plane_words + o0 / 32] = mine;
        }
      };
      // The loop is latency-bound (2 warps per scheduler): unrolled copies give the scheduler
      // independent chains. The float path's body is long, so two copies (more would spill out
      // of the instruction cache); the threshold path's is short, so four.
      if constexpr (kThresholds && kWindow == 1) {
#pragma unroll 4
        for (int j = 0; j < groups; ++j) output_group(j);
      } else {
#pragma unroll 2
        for (int j = 0; j < groups; ++j) output_group(j);
      }
      if constexpr (kMode == kConvOutFusedPacked) {
        part = warp_sum(part);
        if (lane == 0)
          publish_row_sum(prm.row_sum_ws, prm.out_row_sums, m, part, prm.col_tiles);
      }
    }
  };
  using Int32Out = std::integral_constant<int, kConvOutInt32>;
  using FloatOut = std::integral_constant<int, kConvOutFusedFloat>;
  using PackedOut = std::integral_constant<int, kConvOutFusedPacked>;
  using Yes = std::true_type;
  using No = std::false_type;
  auto run = [&](auto mode_tag, auto residual_tag, auto thresholds_tag, auto sat_tag, auto pool_tag) {
    ranks > 1 ? finish(mode_tag, residual_tag, thresholds_tag, Yes{}, sat_tag, pool_tag)
              : finish(mode_tag, residual_tag, thresholds_tag, No{}, sat_tag, pool_tag);
  };
  const int mode = prm.mode;
  if (mode == kConvOutInt32) {
    run(Int32Out{}, No{}, No{}, Yes{}, No{});
  } else if (mode == kConvOutFusedFloat) {
    residual ? run(FloatOut{}, Yes{}, No{}, Yes{}, No{}) : run(FloatOut{}, No{}, No{}, Yes{}, No{});
  } else if (residual) {
    thresholds ? run(PackedOut{}, Yes{}, Yes{}, Yes{}, No{}) : run(PackedOut{}, Yes{}, No{}, Yes{}, No{});
  } else if (prm.pool_fused) {
    // Planned only for the compile-time plane counts (conv_dispatch.cu: fast_planes).
    if constexpr (P != 0 && Q != 0) {
      thresholds ? run(PackedOut{}, No{}, Yes{}, Yes{}, Yes{}) : run(PackedOut{}, No{}, No{}, Yes{}, Yes{});
    }
  } else if (!thresholds) {
    run(PackedOut{}, No{}, No{}, Yes{}, No{});
  } else {
    ox != 0 ? run(PackedOut{}, No{}, Yes{}, Yes{}, No{}) : run(PackedOut{}, No{}, Yes{}, No{}, No{});
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (ranks > 1) cluster.sync();  // keep this block's tile alive until every reader is done
#endif
}

}  // namespace apnn
