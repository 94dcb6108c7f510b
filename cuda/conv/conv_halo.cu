// The halo convolution (sm_90a): K x K kernels with padding K / 2 over at most 256 channels: 3x3
// and 5x5 (at most 128 channels) at stride 1, 1x1 and 3x3 at stride 2.
//
// The implicit GEMM (conv_kernel.cuh) copies every (pixel, tap) pair of its tile on its own: for
// 64 channels that is 9 copies of 8 bytes per pixel and plane, each with its own bounds check
// and 64-bit address, and ncu found VGG's 224x224x64 layer issue-bound on exactly that. Here a
// block copies the input window of an 8 x 8 output tile once ((8 + K - 1) x (8 + K) pixels, about
// 1.7 copies per pixel for 3x3), and every tap reads it in place: an entry of the window is 128
// channel bits of a pixel (16 bytes; rows are padded to 256 bits with zeros, apnn.h, so 256
// channels are two entries, two "slices"; a network's own tensors of 64 or 128 channels may have
// rows of 2 or 4 words, halo_conv_row_words), and a wgmma operand in the no-swizzle layout is 8-row
// core matrices of 16-byte rows, so
//   - 8 consecutive window entries of one window row are a core matrix: 8 output pixels of one
//     tile row at one tap;
//   - the next core matrix along M (the next tile row) is one window row further (the stride
//     byte offset), and the next along K (the next tap to the right) one entry further (the
//     leading byte offset).
// One wgmma k-step of 256 bits is then a pair of taps of one kernel row, (kw 0, 1), (kw 2, 3),
// ..., where tap K has zero weights: 6 k-steps per slice cover a 3x3 kernel, 15 a 5x5 (the
// extra tap and, below 128 channels, the entries' upper bits multiply zero weight bits: the MMA
// has room to spare, the copies do not). The weights of the block's output channels are copied
// once into the same layout and stay; blocks are persistent and walk the tiles, copying the next
// tile's window while they finish the current one.
//
// At stride 2 the taps of neighbouring output pixels are two input columns apart, so the window
// keeps each row's even and odd input columns apart ("parities"): a tap's 8 pixels are then again
// 8 consecutive entries, the next tap of its k-step (the odd one) a parity further, and the next
// tile row two window rows further. A 1x1 kernel at stride 2 reads only even rows and columns,
// and its window holds only those (its k-step's zero tap reads the entries one further on).
//
// M rows are one activation plane's 64 pixels (one wgmma per plane), so a thread holds pixel
// (column lane/4, rows 2 warp and 2 warp + 1) of the tile (the D fragment's rows lane/4 and +8):
// a 2x2 / 2 max pool is the thread's two rows and the lane 4 apart. The finish is the register
// finish's arithmetic (conv_register_finish.cuh): plane pairs combined, the binary-weight
// correction ow * (input row sums over the valid taps, from a window of row sums that is zero
// outside the image), then int32 stores or threshold levels packed into plane words.
#include "conv/conv_halo.h"

#include <algorithm>
#include <cstdint>

#include "arch/cp_async.cuh"
#include "arch/dependent_launch.cuh"
#include "arch/swizzle.cuh"
#include "arch/wgmma.cuh"
#include "common/cuda_check.h"
#include "common/epilogue_thresholds.h"
#include "common/status.h"
#include "common/threshold_entry.cuh"
#include "conv/fragment_outputs.cuh"
#include "conv/row_sum_parts.cuh"

namespace apnn {
namespace halo_detail {

constexpr int kThreads = 128;  // one warpgroup
constexpr int kTile = 8;       // output tile: 8 x 8 pixels, the 64 rows of one wgmma
constexpr int kEntryBytes = 16;

// K x K kernels with padding K / 2 at stride Stride, S slices of 128 channels (an entry each),
// P x Q planes, TN output channels per block.
template <int K, int Stride, int S, int P, int Q, int TN, HaloOutput kOut>
struct Layout {
  static_assert((Stride == 1 && (K == 3 || K == 5)) || (Stride == 2 && (K == 1 || K == 3)),
                "3x3 and 5x5 kernels at stride 1, 1x1 and 3x3 at stride 2");
  static_assert(S == 1 || (S == 2 && K <= 3), "256 channels up to 3x3 kernels (5x5 weights would not fit)");
  static constexpr int kPad = K / 2;
  static constexpr int kPairs = (K + 1) / 2;       // tap pairs per kernel row (the last one half zero)
  static constexpr int kKSteps = K * kPairs;       // wgmma k-steps of 256 bits
  // Input rows (and columns) the window holds: every one the real taps read, kStep apart (a 1x1
  // kernel at stride 2 reads only every other one).
  static constexpr int kStep = K < Stride ? Stride : 1;
  static constexpr int kSpan = Stride * (kTile - 1) + K;  // input rows the real taps of a tile span
  static constexpr int kWindowRows = (kSpan - 1) / kStep + 1;
  // Input columns copied per row: at stride 1 also the one the last pair's zero tap reads.
  static constexpr int kLoadedCols = Stride == 1 ? kTile + 2 * kPairs - 1 : (kSpan - 1) / kStep + 1;
  static constexpr bool kParities = kStep < Stride;  // even and odd columns apart (3x3 at stride 2)
  static constexpr int kParityCols = kParities ? (kLoadedCols + 1) / 2 : kLoadedCols;
  // Entries per window row in shared memory, one spare (an odd count spreads rows over the banks;
  // the zero taps of 1x1 at stride 2 read it).
  static constexpr int kWindowCols = (kParities ? 2 * kParityCols : kLoadedCols) + 1;
  static constexpr int kSumCols = (kSpan - 1) / kStep + 1;  // the row-sum window: the real taps only
  static constexpr int kSumEntries = kWindowRows * kSumCols;
  static constexpr bool kPacked = kOut != HaloOutput::kInt32;
  static constexpr int kWeightBytes = Q * S * kKSteps * 2 * TN * kEntryBytes;
  static constexpr int kWindowBytes = P * S * kWindowRows * kWindowCols * kEntryBytes;  // one buffer
  // The window entry of loaded input column `col` of a row, and the entry (column offset) where
  // tap kw of the tile's first pixel is; the taps of the next pixels follow entry by entry.
  static constexpr __host__ __device__ int column_entry(int col) {
    return kParities ? (col % 2) * kParityCols + col / 2 : col;
  }
  static constexpr __host__ __device__ int tap_entry(int kw) { return kStep == Stride ? kw : column_entry(kw); }
  static constexpr int kSumBytes = (kSumEntries * 4 + 15) / 16 * 16;
  // Threshold entries: one part of TN per residual code, one entry apart beyond TN, so that the
  // parts of a channel lie in different banks (the lanes of a quad read 4 channels of the parts
  // their pixels' residual codes pick).
  static constexpr int kPartStride = kOut == HaloOutput::kPackedResidual ? TN + 1 : TN;
  static constexpr int kEntryCount = !kPacked ? 0 : kOut == HaloOutput::kPackedResidual ? kMaxResidualCodes * kPartStride : TN;
  // The residual's plane words of the tile's output channels (<= 2 planes), per pixel, copied
  // with the window: the finish then reads them from shared memory, not through a global round trip.
  static constexpr int kResidualWords = TN / 32;  // per pixel and plane
  static constexpr int kResidualBytes = kOut == HaloOutput::kPackedResidual ? kTile * kTile * 2 * kResidualWords * 4 : 0;
  static constexpr int kSmemBytes = kWeightBytes + 2 * kWindowBytes + 2 * kSumBytes + kEntryCount * 16 + 2 * kResidualBytes;
  static_assert(kWindowBytes % 16 == 0, "16-byte aligned regions");
};

// Resident blocks the registers must allow: a block's steps (window wait, MMAs, finish) run one
// after another, so other blocks hide their latency. Measured (H100, VGG and ResNet-18 layers at
// batch 256): 128 accumulators at 3 blocks (168 registers) 8-22% faster than unbounded (2 blocks
// at 190); 64 accumulators at 5 blocks (96 registers, spilling) 3-6% slower than at 4.
constexpr int min_blocks(int p, int q, int tile_n) { return p * q * tile_n / 2 <= 64 ? 4 : 3; }

}  // namespace halo_detail

template <int K, int Stride, int S, int P, int Q, int TN, HaloOutput kOut>
__global__ void __launch_bounds__(halo_detail::kThreads, halo_detail::min_blocks(P, Q, TN)) halo_conv_kernel(const ConvKernelParams prm) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace halo_detail;
  using namespace arch;
  using L = Layout<K, Stride, S, P, Q, TN, kOut>;
  constexpr int kKSteps = L::kKSteps, kPairs = L::kPairs, kWindowRows = L::kWindowRows, kStep = L::kStep;
  constexpr int kWindowCols = L::kWindowCols, kLoadedCols = L::kLoadedCols, kSumCols = L::kSumCols;
  constexpr int kSumEntries = L::kSumEntries;
  constexpr bool kPacked = L::kPacked;
  constexpr bool kPool = kOut == HaloOutput::kPackedPool;
  constexpr bool kResidual = kOut == HaloOutput::kPackedResidual;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_weights = smem_addr(smem);
  const uint32_t s_windows = s_weights + L::kWeightBytes;
  const int32_t* s_sums = reinterpret_cast<const int32_t*>(smem + L::kWeightBytes + 2 * L::kWindowBytes);
  int4* s_entries = reinterpret_cast<int4*>(smem + L::kWeightBytes + 2 * L::kWindowBytes + 2 * L::kSumBytes);
  const uint32_t* s_residual = reinterpret_cast<const uint32_t*>(s_entries + L::kEntryCount);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n0 = static_cast<int>(blockIdx.x % prm.col_tiles) * TN;

  // The block's weights, once: entry (plane, slice, k-step, tap of the pair, channel) holds
  // channel bits 128 slice .. + 127 of one tap; tap slot K, channels past C and past O are zero.
  // Two 8-byte copies per entry: packed taps of 64 or 192 channels end mid-entry.
  {
    // Words from tap to tap: the weights keep 256-bit taps even where the activations' rows do not.
    const int tap_stride = prm.tap_words ? prm.tap_words : prm.w_words / (K * K);
    for (int i = tid; i < Q * S * kKSteps * 2 * TN; i += kThreads) {
      const int n = i % TN, slot = (i / TN) % 2, step = (i / (2 * TN)) % kKSteps;
      const int slice = (i / (2 * TN * kKSteps)) % S, plane = i / (2 * TN * kKSteps * S);
      const int kh = step / kPairs, kw = 2 * (step % kPairs) + slot, o = n0 + n;
      const bool valid = kw < K && o < prm.O;
      const uint32_t* src = prm.w_planes + (static_cast<int64_t>(valid ? plane : 0) * prm.w_rows_padded + (valid ? o : 0)) *
                                               prm.w_words + (valid ? (kh * K + kw) * tap_stride + 4 * slice : 0);
      const uint32_t dst = s_weights + i * kEntryBytes;
      cp_async_8(dst, src, valid && 128 * slice < prm.C);
      cp_async_8(dst + 8, src + 2, valid && 128 * slice + 64 < prm.C);
    }
    cp_async_commit();
  }
  if constexpr (kPacked) {
    const int parts = kResidual ? prm.ep.threshold_residual_codes : 1;
    for (int i = tid; i < parts * TN; i += kThreads)
      s_entries[i / TN * L::kPartStride + i % TN] = table_entry(prm.ep, prm.O, i / TN, n0 + i % TN);
  }
  // Everything above is this layer's constants; the activations are the previous kernels'.
  arch::wait_for_previous_kernels();
  arch::allow_next_kernel_start();

  const int tiles_x = (prm.OW + kTile - 1) / kTile, tiles_y = (prm.OH + kTile - 1) / kTile;
  const int tiles_per_image = tiles_x * tiles_y;
  const int tiles = prm.M / (prm.OH * prm.OW) * tiles_per_image;
  const int tile_step = static_cast<int>(gridDim.x) / prm.col_tiles;
  const bool sums = prm.ow != 0;  // the binary-weight correction needs the input row sums

  // Tile t's input window into buffer buf: row `row`, loaded column `col` of (plane, slice) is
  // input pixel (8 Stride ty - K / 2 + kStep row, 8 Stride tx - K / 2 + kStep col), zero outside
  // the image, at entry L::column_entry(col) of the row.
  auto load_window = [&](int t, int buf) {
    const int n = t / tiles_per_image, r = t - n * tiles_per_image, ty = r / tiles_x, tx = r - ty * tiles_x;
    const int iy0 = ty * kTile * Stride - L::kPad, ix0 = tx * kTile * Stride - L::kPad;
    const int64_t image0 = static_cast<int64_t>(n) * prm.H * prm.W;
    const uint32_t window = s_windows + buf * L::kWindowBytes;
    for (int i = tid; i < P * S * kWindowRows * kLoadedCols; i += kThreads) {
      const int part = i / (kWindowRows * kLoadedCols), rest = i - part * (kWindowRows * kLoadedCols);
      const int plane = part / S, slice = part - plane * S;  // part: the window of (plane, slice)
      const int row = rest / kLoadedCols, col = rest - row * kLoadedCols;
      const int iy = iy0 + kStep * row, ix = ix0 + kStep * col;
      const bool valid = static_cast<unsigned>(iy) < static_cast<unsigned>(prm.H) &&
                         static_cast<unsigned>(ix) < static_cast<unsigned>(prm.W);
      const uint32_t* src =
          valid ? prm.x_planes + (static_cast<int64_t>(plane) * prm.x_rows_padded + image0 + iy * prm.W + ix) * prm.cwords +
                      4 * slice
                : prm.x_planes;
      const uint32_t dst = window + ((part * kWindowRows + row) * kWindowCols + L::column_entry(col)) * kEntryBytes;
      // Rows of 2 words (64 channels without padding) are 8-byte aligned: the entry's upper half
      // keeps stale bits, which meet zero weight bits.
      if (prm.cwords == 2)
        cp_async_8(dst, src, valid);
      else
        cp_async_16(dst, src, valid);
    }
    if (sums) {
      const uint32_t sum_window = smem_addr(s_sums) + buf * L::kSumBytes;
      for (int i = tid; i < kSumEntries; i += kThreads) {
        const int row = i / kSumCols, col = i - row * kSumCols, iy = iy0 + kStep * row, ix = ix0 + kStep * col;
        const bool valid = static_cast<unsigned>(iy) < static_cast<unsigned>(prm.H) &&
                           static_cast<unsigned>(ix) < static_cast<unsigned>(prm.W);
        cp_async_4_or_zero(sum_window + i * 4, valid ? prm.x_row_sums + image0 + iy * prm.W + ix : prm.x_row_sums, valid);
      }
    }
    if constexpr (kResidual) {  // (pixel, plane): the words of channels n0 .. n0 + TN - 1, zero past the planes
      const uint32_t residual = smem_addr(s_residual) + buf * L::kResidualBytes;
      for (int i = tid; i < kTile * kTile * 2; i += kThreads) {
        const int pixel = i >> 1, plane = i & 1, oy = ty * kTile + pixel / kTile, ox = tx * kTile + pixel % kTile;
        const bool valid = oy < prm.OH && ox < prm.OW && plane < prm.res.bits;
        const uint32_t* src =
            valid ? prm.res.planes + (static_cast<int64_t>(plane) * prm.res.rows_padded + (n * prm.OH + oy) * prm.OW + ox) *
                                         prm.res.words + n0 / 32
                  : prm.res.planes;
        cp_async_bytes<L::kResidualWords * 4>(residual + i * L::kResidualWords * 4, src, valid);
      }
    }
  };

  const conv_detail::PairCoefficients<P, Q> pair(prm.cx, prm.cw);

  int tile = static_cast<int>(blockIdx.x) / prm.col_tiles;
  if (tile < tiles) load_window(tile, 0);
  cp_async_commit();
  const int g = lane >> 2, quad = lane & 3;
  for (int buf = 0; tile < tiles; tile += tile_step, buf ^= 1) {
    if (tile + tile_step < tiles) load_window(tile + tile_step, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();   // the weights and this tile's window
    fence_proxy_async();  // this thread's copies, visible to the wgmmas' async proxy
    __syncthreads();

    int32_t acc[P][Q][TN / 2];
#pragma unroll
    for (int ip = 0; ip < P; ++ip)
#pragma unroll
      for (int jq = 0; jq < Q; ++jq)
#pragma unroll
        for (int e = 0; e < TN / 2; ++e) acc[ip][jq][e] = 0;
    const uint32_t window = s_windows + buf * L::kWindowBytes;
    wgmma_fence();
#pragma unroll
    for (int slice = 0; slice < S; ++slice)
#pragma unroll
      for (int step = 0; step < kKSteps; ++step) {
        // Taps (kh, kw0) and (kh, kw0 + 1) of the 64 pixels: the next tile row is Stride input
        // rows further.
        const int kh = step / kPairs, kw0 = 2 * (step % kPairs);
        constexpr int kTapOffset = (L::tap_entry(1) - L::tap_entry(0)) * kEntryBytes;
        constexpr int kRowOffset = Stride / kStep * kWindowCols * kEntryBytes;
#pragma unroll
        for (int ip = 0; ip < P; ++ip) {
          const uint64_t a = plain_descriptor(
              window + (((ip * S + slice) * kWindowRows + kh / kStep) * kWindowCols + L::tap_entry(kw0)) * kEntryBytes,
              kTapOffset, kRowOffset);
#pragma unroll
          for (int jq = 0; jq < Q; ++jq)
            wgmma_b1_and<TN>(acc[ip][jq], a,
                             plain_descriptor(s_weights + ((jq * S + slice) * kKSteps + step) * 2 * TN * kEntryBytes,
                                              TN * kEntryBytes, 8 * kEntryBytes));
        }
      }
    wgmma_commit();

    // While the MMAs run: this thread's pixels (column g, rows 2 warp + h) and their corrections.
    const int n = tile / tiles_per_image, r = tile - n * tiles_per_image, ty = r / tiles_x, tx = r - ty * tiles_x;
    const int ox = tx * kTile + g;
    int m[2];
    bool valid[2];
    uint32_t corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int oy = ty * kTile + 2 * warp + h;
      valid[h] = oy < prm.OH && ox < prm.OW;
      m[h] = (n * prm.OH + oy) * prm.OW + ox;
      int32_t xsum = 0;
      if (sums) {
        const int32_t* s = s_sums + buf * (L::kSumBytes / 4);
#pragma unroll
        for (int dy = 0; dy < K; ++dy)
#pragma unroll
          for (int dx = 0; dx < K; ++dx)
            xsum += s[(Stride * (2 * warp + h) + dy) / kStep * kSumCols + (Stride * g + dx) / kStep];
      }
      corr[h] = static_cast<uint32_t>(prm.ow) * static_cast<uint32_t>(xsum);
    }
    wgmma_wait<0>();

    // The convolution value of row h at channel 8 j + 2 quad + e (exact once reduced to int32).
    auto value = [&](int h, int j, int e) -> int32_t {
      uint32_t sum = corr[h];
#pragma unroll
      for (int jq = 0; jq < Q; ++jq)
#pragma unroll
        for (int ip = 0; ip < P; ++ip) sum += pair.c[ip][jq] * static_cast<uint32_t>(acc[ip][jq][4 * j + 2 * h + e]);
      return static_cast<int32_t>(sum);
    };

    if constexpr (!kPacked) {
      const bool pairs = (prm.O & 1) == 0;  // channel pairs (o even) are 8-byte aligned
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (!valid[h]) continue;
        int32_t* y_row = prm.y + static_cast<int64_t>(m[h]) * prm.O;
#pragma unroll
        for (int j = 0; j < TN / 8; ++j)
          conv_detail::store_channel_pair(y_row, n0 + 8 * j + 2 * quad, prm.O, pairs, value(h, j, 0), value(h, j, 1));
      }
    } else {
      const conv_detail::PackedOutput out(prm.oq, prm.out_planes, prm.out_rows_padded, prm.out_words);
      // With the pool: window (rows 2 warp, 2 warp + 1; columns g, g ^ 1), stored by even g.
      const int py = ty * (kTile / 2) + warp, px = tx * (kTile / 2) + g / 2;
      const bool pool_stores = kPool && g % 2 == 0 && py < prm.PH && px < prm.PW;
      const int pool_row = (n * prm.PH + py) * prm.PW + px;
      int32_t row_sum[2] = {0, 0};
#pragma unroll
      for (int word = 0; word < TN / 32; ++word) {
        const int o0 = n0 + 32 * word;
        // The residual codes of this thread's channels 8 b + 2 quad + e of the word: bits
        // 8 b + 2 e .. + 1 of codes[h] (planes 0 and 1 of each code side by side).
        uint32_t codes[2] = {0u, 0u};
        if constexpr (kResidual) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t* words = s_residual + buf * (L::kResidualBytes / 4) +
                                    ((2 * warp + h) * kTile + g) * 2 * L::kResidualWords + word;
            codes[h] = conv_detail::quad_residual_codes(words[0], words[L::kResidualWords], quad);
          }
        }
        uint32_t levels[2][2] = {{0u, 0u}, {0u, 0u}};  // byte b: channel 32 word + 8 b + 2 quad + e
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const int j = 4 * word + b, nn = 8 * j + 2 * quad;
          int4 t[2];
          if constexpr (!kResidual) t[0] = s_entries[nn], t[1] = s_entries[nn + 1];
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              if constexpr (kResidual)  // the table part of this output's residual code
                t[e] = s_entries[conv_detail::residual_code(codes[h], b, e) * L::kPartStride + nn + e];
              levels[h][e] |= entry_level(value(h, j, e), t[e]) << (8 * b);
            }
        }
        const int channels = prm.O - o0;
        if constexpr (kPool) {
          uint32_t pooled[2];
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            pooled[e] = __vmaxu4(levels[0][e], levels[1][e]);
            pooled[e] = __vmaxu4(pooled[e], __shfl_xor_sync(0xffffffffu, pooled[e], 4));
          }
          uint32_t w0, w1;
          level_plane_words(pooled[0], pooled[1], out.codes, quad, channels, w0, w1);
          row_sum[0] += out.row_sum_part(w0, w1);
          if (pool_stores && channels > 0 && quad < prm.oq.bits) out.word(quad, pool_row, o0 / 32) = quad == 0 ? w0 : w1;
        } else {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            uint32_t w0, w1;
            level_plane_words(levels[h][0], levels[h][1], out.codes, quad, channels, w0, w1);
            row_sum[h] += out.row_sum_part(w0, w1);
            if (valid[h] && channels > 0 && quad < prm.oq.bits) out.word(quad, m[h], o0 / 32) = quad == 0 ? w0 : w1;
          }
        }
      }
      if (quad == 0) {
        if constexpr (kPool) {
          if (pool_stores) conv_detail::publish_row_sum(prm.row_sum_ws, prm.out_row_sums, pool_row, row_sum[0], prm.col_tiles);
        } else {
#pragma unroll
          for (int h = 0; h < 2; ++h)
            if (valid[h]) conv_detail::publish_row_sum(prm.row_sum_ws, prm.out_row_sums, m[h], row_sum[h], prm.col_tiles);
        }
      }
    }
    __syncthreads();  // every thread is done with this buffer before the next-but-one window fills it
  }
  cp_async_wait<0>();
#endif
}

namespace {

template <int K, int Stride, int S, int P, int Q, int TN, HaloOutput kOut>
void launch(const ConvKernelParams& prm, int multiprocessors, bool dependent, cudaStream_t stream) {
  constexpr auto fn = halo_conv_kernel<K, Stride, S, P, Q, TN, kOut>;
  constexpr int kSmem = halo_detail::Layout<K, Stride, S, P, Q, TN, kOut>::kSmemBytes;
  allow_dynamic_shared_memory<fn>(kSmem);
  static const int resident = [] {
    int blocks = 0;
    cuda_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fn, halo_detail::kThreads, kSmem),
               "cudaOccupancyMaxActiveBlocksPerMultiprocessor(halo_conv_kernel)");
    return std::max(blocks, 1);
  }();
  const int64_t tiles = halo_conv_tiles(prm.M / (prm.OH * prm.OW), prm.OH, prm.OW);
  const int64_t per_column = std::min<int64_t>(
      tiles, std::max<int64_t>(1, static_cast<int64_t>(resident) * multiprocessors / prm.col_tiles));
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(per_column * prm.col_tiles));
  config.blockDim = dim3(halo_detail::kThreads);
  config.dynamicSmemBytes = kSmem;
  config.stream = stream;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attr;
  config.numAttrs = dependent ? 1 : 0;
  APNN_CUDA_CHECK(cudaLaunchKernelEx(&config, fn, prm));
}

// Stride 2 is built for int32 and plain packed outputs (halo_conv_outputs).
template <int K, int Stride, int S, int P, int Q, int TN>
void launch_output(const ConvKernelParams& prm, HaloOutput output, int multiprocessors, bool dependent,
                   cudaStream_t stream) {
  switch (output) {
    case HaloOutput::kInt32:
      return launch<K, Stride, S, P, Q, TN, HaloOutput::kInt32>(prm, multiprocessors, dependent, stream);
    case HaloOutput::kPacked:
      return launch<K, Stride, S, P, Q, TN, HaloOutput::kPacked>(prm, multiprocessors, dependent, stream);
    case HaloOutput::kPackedPool:
      if constexpr (Stride == 1) return launch<K, 1, S, P, Q, TN, HaloOutput::kPackedPool>(prm, multiprocessors, dependent, stream);
      break;
    case HaloOutput::kPackedResidual:
      if constexpr (Stride == 1) return launch<K, 1, S, P, Q, TN, HaloOutput::kPackedResidual>(prm, multiprocessors, dependent, stream);
      break;
  }
  require(false, APNN_STATUS_INTERNAL_ERROR, "no halo convolution kernel with a pool or residual at stride 2");
}

}  // namespace

bool halo_conv_planes(int p, int q) { return (p == 1 && q == 1) || (p == 2 && q == 1) || (p == 2 && q == 2); }

int halo_conv_tile_n(int p, int q, int out_channels) {
  // 128 wide where the accumulators fit and the last tile wastes no more than 64-wide tiles would.
  // Measured (H100, ResNet-18 at batch 256): 64 wide for its residual layers (whose 128-wide
  // finishes spill) and its 1x1 downsamples ran 0-27% slower.
  const int64_t wide = (out_channels + 127) / 128 * 128, narrow = (out_channels + 63) / 64 * 64;
  return p * q <= 2 && wide <= narrow ? 128 : 64;
}

bool halo_conv_shape(int kernel, int stride, int channels) {
  if (stride == 2) return (kernel == 1 || kernel == 3) && channels <= 256;
  return stride == 1 && ((kernel == 3 && channels <= 256) || (kernel == 5 && channels <= 128));
}

bool halo_conv_row_words(int64_t words, int64_t channels) {
  return words == 8 || (words == 2 && channels <= 64) || (words == 4 && channels <= 128);
}

bool halo_conv_outputs(int stride, HaloOutput output) {
  return stride == 1 || output == HaloOutput::kInt32 || output == HaloOutput::kPacked;
}

int64_t halo_conv_tiles(int batch, int out_h, int out_w) {
  const int64_t per_side = halo_detail::kTile;
  return static_cast<int64_t>(batch) * ((out_h + per_side - 1) / per_side) * ((out_w + per_side - 1) / per_side);
}

namespace {

template <int K, int Stride, int S>
void launch_shape(const ConvKernelParams& prm, HaloOutput output, int multiprocessors, bool dependent,
                  cudaStream_t stream) {
  const int p = prm.p, q = prm.q;
  if (prm.tn == 128) {
    if (p == 1) return launch_output<K, Stride, S, 1, 1, 128>(prm, output, multiprocessors, dependent, stream);
    return launch_output<K, Stride, S, 2, 1, 128>(prm, output, multiprocessors, dependent, stream);
  }
  if (q == 2) return launch_output<K, Stride, S, 2, 2, 64>(prm, output, multiprocessors, dependent, stream);
  if (p == 1) return launch_output<K, Stride, S, 1, 1, 64>(prm, output, multiprocessors, dependent, stream);
  launch_output<K, Stride, S, 2, 1, 64>(prm, output, multiprocessors, dependent, stream);
}

}  // namespace

void launch_halo_conv(const ConvKernelParams& prm, HaloOutput output, int multiprocessors, bool dependent,
                      cudaStream_t stream) {
  require(halo_conv_planes(prm.p, prm.q) && (prm.tn == 64 || prm.tn == halo_conv_tile_n(prm.p, prm.q, prm.O)) &&
              prm.KH == prm.KW && prm.stride_h == prm.stride_w &&
              halo_conv_shape(prm.KH, prm.stride_h, prm.C) && halo_conv_outputs(prm.stride_h, output) &&
              prm.pad_h == prm.KH / 2 && prm.pad_w == prm.KW / 2 && halo_conv_row_words(prm.cwords, prm.C) &&
              (output != HaloOutput::kPackedResidual || prm.res.words % (prm.tn / 32) == 0),
          APNN_STATUS_INTERNAL_ERROR, "no halo convolution kernel for these planes, channels, kernel and stride");
  const bool wide = prm.C > 128;  // two entries (slices) per pixel
  if (prm.stride_h == 2) {
    if (prm.KH == 1)
      return wide ? launch_shape<1, 2, 2>(prm, output, multiprocessors, dependent, stream)
                  : launch_shape<1, 2, 1>(prm, output, multiprocessors, dependent, stream);
    return wide ? launch_shape<3, 2, 2>(prm, output, multiprocessors, dependent, stream)
                : launch_shape<3, 2, 1>(prm, output, multiprocessors, dependent, stream);
  }
  if (prm.KH == 5) return launch_shape<5, 1, 1>(prm, output, multiprocessors, dependent, stream);
  if (wide) return launch_shape<3, 1, 2>(prm, output, multiprocessors, dependent, stream);
  launch_shape<3, 1, 1>(prm, output, multiprocessors, dependent, stream);
}

}  // namespace apnn
