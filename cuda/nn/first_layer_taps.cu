// The first convolution straight from an 8-bit image on Hopper's warpgroup INT8 MMA (sm_90a).
//
// The mma.sync kernel (first_layer_kernel.cu) gathers every pixel's receptive field into its
// own A fragments, so each image byte is loaded and shifted into place once per output pixel
// that reads it; ncu counts 2.8% of its instructions as MMAs and a third as its per-output
// threshold finish. Here a block copies, per 8 x 8 output tile, a window of tap groups
// (nn_types.h): an entry is 4 consecutive pixels of one input row, 4 bytes each (the pixel's
// channels), 16 bytes in all: one row of a no-swizzle wgmma core matrix. Entry 8g + c of window
// row r holds group g (taps 4g..4g+3) of the tile's output column c, so
//   - 8 consecutive entries are a core matrix: 8 output pixels of one tile row, 4 taps;
//   - the next core matrix along M (the next tile row) is stride_h window rows further;
//   - a K step's two groups are two core matrices along K, (r, 2p) and (r, 2p + 1) 8 entries
//     apart, or (r, G - 1) and (r + 1, G - 1) one window row apart;
// and one wgmma m64n64k32 per K step reads the window in place, kernel row kh starting at window
// row kh: each entry is copied once per tile for the KH / stride_h tile rows that read it. At
// stride 4 group g of column c is group g - 1 of column c + 1, so entry c + g holds it once and
// the groups of a pair are 1 entry apart (the halo convolution's layout, conv_halo.cu).
// The weights stay in shared memory as B operands (laid out by the host); blocks are persistent
// and fill the next tile's window while the tensor cores multiply the current one.
//
// The finish compares each accumulator with its channel's thresholds T_1 <= T_2 <= T_3
// (common/epilogue_thresholds.h) by binary search: T_2 first, then T_3 or T_1, which gives the
// count of thresholds passed as its two bits, ORed into words. Only then, per 32-channel word,
// counts become code bits: code = (lowest code + base + direction * count) mod 4, as bit logic
// with four per-channel masks.
#include "nn/first_layer_taps.h"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "arch/cp_async.cuh"
#include "arch/dependent_launch.cuh"
#include "arch/wgmma.cuh"
#include "common/cuda_check.h"
#include "common/fast_divisor.h"
#include "common/status.h"

namespace apnn {
namespace taps_detail {

constexpr int kThreads = 128;  // one warpgroup
constexpr int kTile = kFirstLayerTapsTile;
constexpr int kChannels = kFirstLayerChannels;  // the wgmma's N
constexpr int kMaxSteps = kFirstLayerTapsMaxKernel * (kFirstLayerTapsMaxKernel / kTapGroupTaps / 2);

constexpr int kFillBatch = 3;  // window entries a thread loads before it stores them

// One launch's geometry in 32 bits (the chunk's image bytes and pixels are < 2^31).
struct TapGeometry {
  int kh, kw, stride_h, stride_w, pad_h, pad_w;
  int in_h, in_w, in_c, out_h, out_w;
  int steps, window_rows, window_bytes, weight_bytes;
  int entries;      // per window row
  int group_pitch;  // entries from group g to g + 1 of an output column: 8, or 1 at stride 4
  FastDivisor entries_div;
  int tiles_x, tiles_per_image, tiles;
  FastDivisor tiles_x_div, tiles_per_image_div;
};

// Tile t's image and tile row and column.
struct TileCoords {
  int n, ty, tx;
  __device__ TileCoords(const TapGeometry& geo, int t) {
    n = static_cast<int>(geo.tiles_per_image_div.quotient(static_cast<uint32_t>(t)));
    const int rest = t - n * geo.tiles_per_image;
    ty = static_cast<int>(geo.tiles_x_div.quotient(static_cast<uint32_t>(rest)));
    tx = rest - ty * geo.tiles_x;
  }
};

// Adds `bit` to c1 where y >= T_2 and to c0 where y >= (y >= T_2 ? T_3 : T_1): the two bits of
// the number of thresholds y passed.
__device__ __forceinline__ void count_bits(int32_t y, int4 t, uint32_t bit, uint32_t& c0, uint32_t& c1) {
  asm("{\n"
      "  .reg .pred p0, p1;\n"
      "  .reg .s32 t;\n"
      "  setp.ge.s32 p0, %2, %4;\n"
      "  selp.s32 t, %5, %3, p0;\n"
      "  setp.ge.s32 p1, %2, t;\n"
      "  @p1 or.b32 %0, %0, %6;\n"
      "  @p0 or.b32 %1, %1, %6;\n"
      "}\n"
      : "+r"(c0), "+r"(c1)
      : "r"(y), "r"(t.x), "r"(t.y), "r"(t.z), "r"(bit));
}

// A pixel's tap word: its in_c channel bytes at byte `at` of the 4-byte aligned image, zero
// above them. The second load only where those bytes reach into the next word.
__device__ __forceinline__ uint32_t pixel_word(const uint32_t* image, int at, int in_c, uint32_t channel_mask) {
  const int lo = at >> 2, shift = at & 3;
  const uint32_t w0 = __ldg(image + lo);
  const uint32_t w1 = shift + in_c > 4 ? __ldg(image + lo + 1) : 0u;
  return __funnelshift_r(w0, w1, 8u * static_cast<uint32_t>(shift)) & channel_mask;
}

// The 4 pixels (row_pixel + ix0 ..  + 3) of one entry: zero outside the image. Inside it, RGB
// pixels are 12 contiguous bytes (three or four aligned loads, then shifts) and 4-channel
// pixels one word each; other widths, and entries across an edge, go pixel by pixel.
__device__ __forceinline__ uint4 entry_pixels(const TapGeometry& geo, const uint32_t* image, uint32_t channel_mask,
                                              bool row_inside, int row_pixel, int ix0) {
  if (row_inside && ix0 >= 0 && ix0 + kTapGroupTaps <= geo.in_w) {
    const int p = row_pixel + ix0;
    if (geo.in_c == 3) {
      const int b0 = 3 * p, lo = b0 >> 2;
      const uint32_t s = 8u * static_cast<uint32_t>(b0 & 3);
      const uint32_t w0 = __ldg(image + lo), w1 = __ldg(image + lo + 1), w2 = __ldg(image + lo + 2);
      const uint32_t w3 = (b0 & 3) ? __ldg(image + lo + 3) : 0u;  // only where the 12 bytes reach it
      const uint32_t r0 = __funnelshift_r(w0, w1, s), r1 = __funnelshift_r(w1, w2, s), r2 = __funnelshift_r(w2, w3, s);
      return make_uint4(r0 & 0xffffffu, __funnelshift_r(r0, r1, 24) & 0xffffffu, __funnelshift_r(r1, r2, 16) & 0xffffffu,
                        r2 >> 8);
    }
    if (geo.in_c == 4) return make_uint4(__ldg(image + p), __ldg(image + p + 1), __ldg(image + p + 2), __ldg(image + p + 3));
  }
  uint32_t word[kTapGroupTaps];
#pragma unroll
  for (int k = 0; k < kTapGroupTaps; ++k) {
    const int ix = ix0 + k;
    const bool inside = row_inside && static_cast<unsigned>(ix) < static_cast<unsigned>(geo.in_w);
    word[k] = inside ? pixel_word(image, (row_pixel + ix) * geo.in_c, geo.in_c, channel_mask) : 0u;
  }
  return make_uint4(word[0], word[1], word[2], word[3]);
}

// Tile t's window (entries of window rows 0 .. window_rows - 2; the last row is read only
// against zero weights and left as it is). Taps past KW are copied too: they meet zero weights.
// Each thread loads kFillBatch entries before storing any, so their loads are in flight together.
__device__ __forceinline__ void fill_window(const TapGeometry& geo, const uint32_t* image, uint32_t channel_mask,
                                            int t, unsigned char* window, int tid) {
  const TileCoords tile(geo, t);
  const int n = tile.n, iy0 = tile.ty * kTile * geo.stride_h - geo.pad_h;
  const int ix_tile = tile.tx * kTile * geo.stride_w - geo.pad_w;
  const int total = (geo.window_rows - 1) * geo.entries;
  for (int base = tid; base < total; base += kThreads * kFillBatch) {
    uint4 v[kFillBatch];
#pragma unroll
    for (int b = 0; b < kFillBatch; ++b) {
      const int i = base + b * kThreads;
      const int r = static_cast<int>(geo.entries_div.quotient(static_cast<uint32_t>(i))), e = i - r * geo.entries;
      // The entry's first pixel: group e / 8 of output column e % 8, or at stride 4 simply e groups in.
      const int ix0 = geo.group_pitch == 1 ? ix_tile + kTapGroupTaps * e
                                           : ix_tile + (e % kTile) * geo.stride_w + kTapGroupTaps * (e / kTile);
      const int iy = iy0 + r;
      const bool row_inside = i < total && static_cast<unsigned>(iy) < static_cast<unsigned>(geo.in_h);
      v[b] = entry_pixels(geo, image, channel_mask, row_inside, (n * geo.in_h + iy) * geo.in_w, ix0);
    }
#pragma unroll
    for (int b = 0; b < kFillBatch; ++b)
      if (base + b * kThreads < total) *reinterpret_cast<uint4*>(window + (base + b * kThreads) * kTapGroupBytes) = v[b];
  }
}

}  // namespace taps_detail

// 6 resident blocks (80 registers, no spills): ResNet-18's conv1 at batch 256 ran 6% faster
// than at 5 (91 registers), batch 8 0.5 us faster.
template <bool kSignedX>
__global__ void __launch_bounds__(taps_detail::kThreads, 6)
    first_layer_taps_kernel(const FirstLayerCall call, const taps_detail::TapGeometry geo) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace taps_detail;
  using namespace arch;
  // The next kernel may launch now: it waits for this one before reading its output, and this
  // grid is one wave, already resident.
  arch::allow_next_kernel_start();
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* s_weights = smem;
  unsigned char* s_windows = smem + geo.weight_bytes;
  int4* s_thresholds = reinterpret_cast<int4*>(s_windows + 2 * geo.window_bytes);
  // Per window buffer and K step, the wgmma operand descriptors: A (x, y) and B (z, w).
  __shared__ uint4 s_descriptors[2][kMaxSteps];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, column = lane >> 2, quad = lane & 3;
  const uint32_t* image = static_cast<const uint32_t*>(call.input.values);
  const uint32_t channel_mask = geo.in_c >= 4 ? ~0u : (1u << (8 * geo.in_c)) - 1u;
  const int O = call.out_channels;

  // Once per block: the weights (copied asynchronously, waited for with the first window), each
  // channel's thresholds (INT32_MAX, never reached, past the table's levels and channels), the
  // wgmma descriptors, and the level-to-code masks.
  {
    const uint32_t dst = arch::smem_addr(s_weights);
    const unsigned char* src = call.tap_weights;
    for (int i = tid; i < geo.weight_bytes / 16; i += kThreads) arch::cp_async_16(dst + 16 * i, src + 16 * i, true);
    arch::cp_async_commit();
  }
  if (tid < kChannels) {
    int32_t t[3];
#pragma unroll
    for (int k = 0; k < 3; ++k) t[k] = tid < O && k < call.levels ? __ldg(call.thresholds + (k + 2) * O + tid) : INT32_MAX;
    s_thresholds[tid] = make_int4(t[0], t[1], t[2], 0);
  }
  if (tid < geo.steps) {
    // A: the step's first group at tile row 0, the second LBO further, the next tile row SBO.
    int r0, g0, r1, g1;
    first_layer_tap_unit(geo.kh, geo.kw, tid, 0, r0, g0);
    first_layer_tap_unit(geo.kh, geo.kw, tid, 1, r1, g1);
    const uint32_t at0 = static_cast<uint32_t>((r0 * geo.entries + g0 * geo.group_pitch) * kTapGroupBytes);
    const uint32_t at1 = static_cast<uint32_t>((r1 * geo.entries + g1 * geo.group_pitch) * kTapGroupBytes);
    const uint32_t m_stride = static_cast<uint32_t>(geo.stride_h * geo.entries * kTapGroupBytes);
    // B: [half][channel] entries, the second half LBO further, the next 8 channels SBO.
    const uint64_t b = plain_descriptor(arch::smem_addr(s_weights) + tid * 2 * kChannels * kTapGroupBytes,
                                        kChannels * kTapGroupBytes, kTile * kTapGroupBytes);
#pragma unroll
    for (int buf = 0; buf < 2; ++buf) {
      const uint64_t a =
          plain_descriptor(arch::smem_addr(s_windows + buf * geo.window_bytes) + at0, at1 - at0, m_stride);
      s_descriptors[buf][tid] = make_uint4(static_cast<uint32_t>(a), static_cast<uint32_t>(a >> 32),
                                           static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32));
    }
  }
  // code = (lowest + base + direction * count) mod 4 in bits, for count bits k0, k1:
  //   bit 0 = a0 ^ (d0 & k0),  bit 1 = a1 ^ (d1 & k0) ^ (d0 & k1) ^ (a0 & d0 & k0),
  // with a = (lowest + base) mod 4 and d = direction mod 4 per channel (bit masks of a word).
  const PackedView& out = call.out;
  const int out_bits = out.quant.bits;
  const apnn_encoding_t out_enc = out.quant.encoding;
  const int32_t lowest = out_enc == APNN_ENCODING_BINARY ? 0 : code_min(out_bits, out_enc);
  uint32_t a0[2], a1[2], d0[2], d1[2];
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    const int o = 32 * w + lane;
    const int32_t a = o < O ? (lowest + __ldg(call.thresholds + o)) & 3 : 0;
    const int32_t d = o < O ? __ldg(call.thresholds + O + o) & 3 : 0;
    a0[w] = __ballot_sync(0xffffffffu, a & 1);
    a1[w] = __ballot_sync(0xffffffffu, a & 2);
    d0[w] = __ballot_sync(0xffffffffu, d & 1);
    d1[w] = __ballot_sync(0xffffffffu, d & 2);
  }
  const int32_t coef0 = plane_coefficient(0, out_bits, out_enc);
  const int32_t coef1 = out_bits > 1 ? plane_coefficient(1, out_bits, out_enc) : 0;
  const int64_t plane_words = out.rows_padded * out.words;
  const int words = (O + 31) / 32;

  const int tile_step = static_cast<int>(gridDim.x);

  // Issues the MMAs of the tile whose window is in buffer `buf`, into d (its first overwrites d).
  auto multiply = [&](int32_t (&d)[32], int buf) {
    wgmma_fence();
    for (int step = 0; step < geo.steps; ++step) {
      const uint4 desc = s_descriptors[buf][step];
      wgmma_i8<kSignedX>(d, static_cast<uint64_t>(desc.y) << 32 | desc.x, static_cast<uint64_t>(desc.w) << 32 | desc.z,
                         step);
    }
    wgmma_commit();
  };

  // Finishes tile t from its accumulators: this thread's pixels are tile row 2 warp + h, column
  // lane / 4; accumulator 4j + 2h + e is channel 8j + 2 quad + e of row half h (PTX ISA, wgmma D
  // fragments). Its count bits go to bit 8 (j % 4) + e of word j / 4, so the 4 lanes of a quad
  // hold disjoint bits of every word (shifted by 2 quad).
  auto finish = [&](const int32_t (&d)[32], int t) {
    const TileCoords tile(geo, t);
    const int ox = tile.tx * kTile + column;
    uint32_t c0[2][2] = {{0u, 0u}, {0u, 0u}}, c1[2][2] = {{0u, 0u}, {0u, 0u}};  // [h][word]
#pragma unroll
    for (int j = 0; j < kChannels / 8; ++j) {
      const int4 th[2] = {s_thresholds[8 * j + 2 * quad], s_thresholds[8 * j + 2 * quad + 1]};
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          count_bits(d[4 * j + 2 * h + e], th[e], 1u << (8 * (j % 4) + e), c0[h][j / 4], c1[h][j / 4]);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int oy = tile.ty * kTile + 2 * warp + h;
      const bool valid = oy < geo.out_h && ox < geo.out_w;
      const int m = (tile.n * geo.out_h + oy) * geo.out_w + ox;
      uint32_t* words_out = out.planes + quad * plane_words + static_cast<int64_t>(m) * out.words;  // plane quad
      int32_t row_sum = 0;
#pragma unroll
      for (int w = 0; w < 2; ++w) {
        uint32_t k0 = c0[h][w] << (2 * quad), k1 = c1[h][w] << (2 * quad);
#pragma unroll
        for (int offset = 1; offset <= 2; offset *= 2) {
          k0 |= __shfl_xor_sync(0xffffffffu, k0, offset);
          k1 |= __shfl_xor_sync(0xffffffffu, k1, offset);
        }
        const uint32_t carry = d0[w] & k0;
        const uint32_t code0 = a0[w] ^ carry;
        const uint32_t code1 = a1[w] ^ (d1[w] & k0) ^ (d0[w] & k1) ^ (a0[w] & carry);
        row_sum += coef0 * __popc(code0) + coef1 * __popc(code1);
        if (valid && w < words && quad < out_bits)
          words_out[w] = quad == 0 ? code0 : code1;
      }
      if (valid && quad == 0) out.row_sums[m] = row_sum;
    }
  };

  // Persistent over the block's tiles: the next tile's window fills the other buffer (its MMAs
  // finished a tile ago, before the barrier) while the tensor cores multiply this one.
  // (Measured: multiplying the next tile during this one's finish, with a second accumulator
  // set, ran no faster at one block less per SM.)
  int32_t acc[32];
  int tile = static_cast<int>(blockIdx.x);
  if (tile < geo.tiles) fill_window(geo, image, channel_mask, tile, s_windows, tid);
  arch::cp_async_wait<0>();  // this thread's weight copies
  for (int buf = 0; tile < geo.tiles; tile += tile_step, buf ^= 1) {
    fence_proxy_async();  // this thread's shared-memory stores, visible to the wgmmas
    __syncthreads();      // the whole window (and, the first time, the weights and tables)
    multiply(acc, buf);
    if (tile + tile_step < geo.tiles)
      fill_window(geo, image, channel_mask, tile + tile_step, s_windows + (buf ^ 1) * geo.window_bytes, tid);
    wgmma_wait<0>();
    finish(acc, tile);
  }
#endif
}

namespace {

template <bool kSignedX>
void launch(const FirstLayerCall& call, const taps_detail::TapGeometry& geo, int multiprocessors, cudaStream_t stream) {
  constexpr auto kernel = first_layer_taps_kernel<kSignedX>;
  allow_dynamic_shared_memory<kernel>(kFirstLayerMaxSmem);
  const int smem = static_cast<int>(first_layer_taps_smem_bytes(geo.kh, geo.kw, geo.stride_h, geo.stride_w));
  int per_sm = 0;
  APNN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, taps_detail::kThreads, smem));
  // One wave of resident blocks, each copying the weights once; fewer when there are fewer tiles.
  const int64_t blocks = std::min<int64_t>(geo.tiles, static_cast<int64_t>(multiprocessors) * std::max(per_sm, 1));
  kernel<<<static_cast<unsigned>(blocks), taps_detail::kThreads, smem, stream>>>(call, geo);
}

}  // namespace

void first_layer_taps_cuda(const FirstLayerCall& call, bool signed_x, int multiprocessors, cudaStream_t stream) {
  const Im2colGeometry& g = call.input.im2col;
  const int64_t images = g.out_h * g.out_w > 0 ? call.out.rows / (g.out_h * g.out_w) : 0;
  const int64_t tiles_x = (g.out_w + kFirstLayerTapsTile - 1) / kFirstLayerTapsTile;
  const int64_t tiles_y = (g.out_h + kFirstLayerTapsTile - 1) / kFirstLayerTapsTile;
  require(call.tap_weights != nullptr && g.stride_h >= 1 &&
              first_layer_taps_fit(g.kh, g.kw, g.stride_h, g.stride_w, g.in_c, call.out_channels) &&
              call.out.quant.bits <= 2 && call.levels >= 1 && call.levels <= 3 &&
              (call.input.dtype == APNN_DTYPE_UINT8 || call.input.dtype == APNN_DTYPE_INT8) &&
              reinterpret_cast<uintptr_t>(call.input.values) % 4 == 0 &&
              images * g.in_h * g.in_w * g.in_c < (int64_t{1} << 31) - 64 && call.out.rows < (int64_t{1} << 31) &&
              images * tiles_x * tiles_y < (int64_t{1} << 30) &&
              first_layer_tap_steps(g.kh, g.kw) <= taps_detail::kMaxSteps,
          APNN_STATUS_INTERNAL_ERROR, "first_layer_taps_cuda: a call outside the kernel's contract");
  if (call.out.rows == 0) return;
  taps_detail::TapGeometry geo;
  geo.kh = g.kh;
  geo.kw = g.kw;
  geo.stride_h = g.stride_h;
  geo.stride_w = g.stride_w;
  geo.pad_h = g.pad_h;
  geo.pad_w = g.pad_w;
  geo.in_h = static_cast<int>(g.in_h);
  geo.in_w = static_cast<int>(g.in_w);
  geo.in_c = static_cast<int>(g.in_c);
  geo.out_h = static_cast<int>(g.out_h);
  geo.out_w = static_cast<int>(g.out_w);
  geo.steps = first_layer_tap_steps(g.kh, g.kw);
  geo.window_rows = first_layer_tap_window_rows(g.kh, g.stride_h);
  geo.entries = first_layer_tap_window_entries(g.kw, g.stride_w);
  geo.group_pitch = g.stride_w == kTapGroupTaps ? 1 : kFirstLayerTapsTile;
  geo.entries_div = FastDivisor(static_cast<uint32_t>(geo.entries));
  geo.window_bytes = geo.window_rows * geo.entries * kTapGroupBytes;
  geo.weight_bytes = static_cast<int>(first_layer_tap_weight_bytes(g.kh, g.kw));
  geo.tiles_x = static_cast<int>(tiles_x);
  geo.tiles_per_image = static_cast<int>(tiles_x * tiles_y);
  geo.tiles = static_cast<int>(images * tiles_x * tiles_y);
  geo.tiles_x_div = FastDivisor(static_cast<uint32_t>(geo.tiles_x));
  geo.tiles_per_image_div = FastDivisor(static_cast<uint32_t>(geo.tiles_per_image));
  signed_x ? launch<true>(call, geo, multiprocessors, stream) : launch<false>(call, geo, multiprocessors, stream);
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
