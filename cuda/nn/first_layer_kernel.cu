// The first convolution of a network straight from its 8-bit image (nn_types.h, FirstLayerCall).
//
// A bit-plane form of this layer multiplies 8 activation planes, each padded to 256 bits of K,
// and needs the image packed into an 8-plane im2col tensor first; on the INT8 tensor cores the
// same layer is one mma.m16n8k32 per 32 bytes of K. Along K each kernel row's KW*C bytes are
// padded to whole words, so a word of a receptive field is 4 contiguous image bytes.
//
// Each block copies all of the layer's weights (as mma B fragments) and its threshold table into
// shared memory once, then its warps take 16-pixel tiles until none are left (the grid fills the
// GPU once). A warp loads its pixels' receptive-field words straight from the image into A
// fragments (two aligned loads and a funnel shift per word, one step ahead of the mma): no
// im2col rows in shared memory, no block barrier per tile. The epilogue is the threshold table
// (common/epilogue_thresholds.h) as one int4 entry per channel, so the output codes equal the
// float epilogue's exactly; the 4 lanes that hold a pixel's channels OR their bits of each plane
// word together, and the row sums are popcounts of the finished words.
#include <algorithm>
#include <string>

#include "arch/dependent_launch.cuh"
#include "arch/mma_sync.cuh"
#include "common/cuda_check.h"
#include "common/epilogue_thresholds.h"
#include "common/fast_divisor.h"
#include "common/threshold_entry.cuh"
#include "nn/first_layer_taps.h"
#include "nn/nn_kernels.h"

namespace apnn {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMTiles = 1;  // m16 tiles per warp (2 shares each B fragment, but 128 registers cost occupancy)
constexpr int kWarpPixels = 16 * kMTiles;    // pixels per warp tile
constexpr int kTiles = kFirstLayerChannels / 8;  // n8 tiles per 64-channel pass
constexpr int kStepWords = kFirstLayerStepWords;  // 32 bytes of K per mma
constexpr int kMaxWords = kFirstLayerMaxK / 4;

// Dynamic shared memory (first_layer_smem_bytes): the weights as the host laid them out, B
// fragments [pass][step][n8 tile][lane] (first_layer_weight_index), then a threshold entry per
// padded channel.
struct FirstLayerSmem {
  int k4_padded, steps, passes;
  int64_t weight_words;
  __device__ explicit FirstLayerSmem(const FirstLayerCall& call)
      : k4_padded(static_cast<int>(round_up(call.k4, kStepWords))),
        steps(k4_padded / kStepWords),
        passes(call.out_channels_padded / kFirstLayerChannels),
        weight_words(first_layer_weight_words(call.k4, call.out_channels)) {}
};

// K word kw of a receptive field: its byte offset from the field's first byte (0 past the
// kernel rows, whose weights are 0), and its kernel row and first byte in that row (dh < 0 past
// the rows).
struct KWord {
  int offset;
  short dh, j0;
};

// One output pixel of this lane: where its receptive field starts in the image (8-bit images)
// and which of its taps are inside. Bytes past a kernel row's KW*C in its last word are read
// but meet zero weights.
struct PixelField {
  int origin;   // chunk byte of tap (0, 0), channel 0 (outside the image on padding)
  int ih0;      // input row of kernel row 0 (-2^20 for a pixel past the end)
  int columns;  // the bytes [lo, hi) of a kernel row inside the image: lo | hi << 16
};

// The output width and height as divisors (pixel index -> n, oh, ow).
struct PixelDivisors {
  FastDivisor out_w, out_h;
};

// Also says whether every tap is inside and the last word's aligned pair inside the chunk.
// 32-bit index math (the chunk's pixels and bytes are < 2^31 by the contract).
__device__ __forceinline__ PixelField pixel_field(const FirstLayerCall& call, const PixelDivisors& div, int m,
                                                  int last_offset, int image_bytes, bool& interior) {
  const Im2colGeometry& g = call.input.im2col;
  const int out_w = static_cast<int>(g.out_w), out_h = static_cast<int>(g.out_h);
  const int in_c = static_cast<int>(g.in_c), in_w = static_cast<int>(g.in_w), in_h = static_cast<int>(g.in_h);
  if (m >= call.out.rows) {
    interior = false;
    return PixelField{0, -(1 << 20), 0};
  }
  const int image_row = static_cast<int>(div.out_w.quotient(m)), ow = m - image_row * out_w;
  const int n = static_cast<int>(div.out_h.quotient(image_row)), oh = image_row - n * out_h;
  const int ih0 = oh * g.stride_h - g.pad_h, iw0 = ow * g.stride_w - g.pad_w;
  const int origin = ((n * in_h + ih0) * in_w + iw0) * in_c;
  const int lo = max(0, -iw0) * in_c, hi = max(0, min(g.kw, in_w - iw0)) * in_c;
  interior = ih0 >= 0 && ih0 + g.kh <= in_h && iw0 >= 0 && iw0 + g.kw <= in_w &&
             ((origin + last_offset) & ~3) + 8 <= image_bytes;
  return PixelField{origin, ih0, lo | hi << 16};
}

// The word at byte `at` (any alignment) of a 4-byte aligned 8-bit image: two aligned loads and
// a funnel shift. kChecked: each load only where its aligned word starts inside the chunk's
// `image_bytes` (a word that holds an image byte never leaves the allocation's 4-byte granules).
template <bool kChecked>
__device__ __forceinline__ uint32_t unaligned_word(const uint32_t* image, int at, bool row_inside, int image_bytes) {
  const int lo = at >> 2;
  const uint32_t shift = static_cast<uint32_t>(at & 3) * 8;
  if constexpr (!kChecked) return __funnelshift_r(__ldg(image + lo), __ldg(image + lo + 1), shift);
  const uint32_t w0 = row_inside && lo >= 0 && 4 * lo < image_bytes ? __ldg(image + lo) : 0u;
  const uint32_t w1 = row_inside && lo >= -1 && 4 * lo + 4 < image_bytes ? __ldg(image + lo + 1) : 0u;
  return __funnelshift_r(w0, w1, shift);
}

// Bytes [b_begin, b_end) of a word set, others clear (bounds clamped to 0..4).
__device__ __forceinline__ uint32_t byte_mask(int b_begin, int b_end) {
  const uint32_t below_end = __funnelshift_lc(~0u, 0u, 8u * static_cast<uint32_t>(min(max(b_end, 0), 4)));
  const uint32_t below_begin = __funnelshift_lc(~0u, 0u, 8u * static_cast<uint32_t>(min(max(b_begin, 0), 4)));
  return below_end & ~below_begin;
}

// Receptive-field word `w` of pixel `p` (codes, 0 on padding taps and past the kernel rows).
// 8-bit images: kChecked = false only where every pixel of the warp is interior. Other inputs
// (float values, int32 codes, an unaligned sub-batch) convert tap by tap.
template <bool kBytes, bool kChecked>
__device__ __forceinline__ uint32_t field_word(const FirstLayerCall& call, const OutputQuant& q, const PixelField& p,
                                               int64_t m, KWord w, int image_bytes) {
  if constexpr (kBytes) {
    const uint32_t* image = static_cast<const uint32_t*>(call.input.values);
    if constexpr (!kChecked) return w.dh >= 0 ? unaligned_word<false>(image, p.origin + w.offset, true, image_bytes) : 0u;
    const bool row_inside = w.dh >= 0 && static_cast<unsigned>(p.ih0 + w.dh) < static_cast<unsigned>(call.input.im2col.in_h);
    const uint32_t word = unaligned_word<true>(image, p.origin + w.offset, row_inside, image_bytes);
    return word & byte_mask((p.columns & 0xffff) - w.j0, (p.columns >> 16) - w.j0);
  } else {
    const InputPackCall& in = call.input;
    const Im2colGeometry& g = in.im2col;
    if (w.dh < 0 || m >= call.out.rows) return 0u;
    const InputRow r = input_row(in, m);
    const int ih = r.ih0 + w.dh, in_c = static_cast<int>(g.in_c);
    if (ih < 0 || ih >= g.in_h) return 0u;
    const int64_t row_start = r.base + (static_cast<int64_t>(ih) * g.in_w + r.iw0) * in_c;
    uint32_t word = 0;
    for (int b = 0; b < 4 && w.j0 + b < call.row_bytes; ++b) {
      const int j = w.j0 + b, iw = r.iw0 + j / in_c;
      if (iw >= 0 && iw < g.in_w)
        word |= (static_cast<uint32_t>(input_value_code(in, q, row_start + j)) & 0xffu) << (8 * b);
    }
    return word;
  }
}

// The A fragments of K step `step` for this lane's pixels: rows group and group + 8 of each m16
// tile, words quad and quad + 4 of the step.
template <bool kBytes, bool kChecked>
__device__ __forceinline__ void load_fragments(uint32_t (&a)[kMTiles][4], const FirstLayerCall& call,
                                               const OutputQuant& q, const PixelField (&px)[kMTiles][2], int64_t m0,
                                               const KWord* s_words, int step, int lane, int image_bytes) {
  const KWord w0 = s_words[step * kStepWords + lane % 4], w1 = s_words[step * kStepWords + lane % 4 + 4];
#pragma unroll
  for (int t = 0; t < kMTiles; ++t) {
    const int64_t m = m0 + t * 16 + lane / 4;  // and m + 8
    a[t][0] = field_word<kBytes, kChecked>(call, q, px[t][0], m, w0, image_bytes);
    a[t][1] = field_word<kBytes, kChecked>(call, q, px[t][1], m + 8, w0, image_bytes);
    a[t][2] = field_word<kBytes, kChecked>(call, q, px[t][0], m, w1, image_bytes);
    a[t][3] = field_word<kBytes, kChecked>(call, q, px[t][1], m + 8, w1, image_bytes);
  }
}

// One 64-channel pass over a warp tile: acc[m16 tile][n8 tile] over all of K, the A fragments
// of the next step loading while this step's mma run.
template <bool kSignedX, bool kBytes, bool kChecked>
__device__ __forceinline__ void multiply_pass(int32_t (&acc)[kMTiles][kTiles][4], const FirstLayerCall& call,
                                              const OutputQuant& q, const PixelField (&px)[kMTiles][2], int64_t m0,
                                              const KWord* s_words, const uint2* s_b, int steps, int lane,
                                              int image_bytes) {
  uint32_t a[kMTiles][4];
  load_fragments<kBytes, kChecked>(a, call, q, px, m0, s_words, 0, lane, image_bytes);
  for (int step = 0; step < steps; ++step) {
    uint32_t next[kMTiles][4];
    if (step + 1 < steps) load_fragments<kBytes, kChecked>(next, call, q, px, m0, s_words, step + 1, lane, image_bytes);
    const uint2* b = s_b + step * kTiles * 32 + lane;
#pragma unroll
    for (int t = 0; t < kTiles; ++t) {
      const uint2 bt = b[t * 32];
#pragma unroll
      for (int i = 0; i < kMTiles; ++i) arch::mma_i8<kSignedX>(acc[i][t], a[i], bt);
    }
    if (step + 1 < steps) {
#pragma unroll
      for (int i = 0; i < kMTiles; ++i)
#pragma unroll
        for (int r = 0; r < 4; ++r) a[i][r] = next[i][r];
    }
  }
}

template <bool kSignedX, bool kBytes>
__global__ void __launch_bounds__(kThreads) first_layer_kernel(const FirstLayerCall call, const PixelDivisors div) {
  // The next convolution may launch now: it waits for this kernel before reading its output, and
  // this grid is one wave, already resident.
  arch::allow_next_kernel_start();
  extern __shared__ __align__(16) unsigned char smem[];
  const FirstLayerSmem layout(call);
  uint2* s_b = reinterpret_cast<uint2*>(smem);  // [pass][step][n8 tile][lane]
  int4* s_entries = reinterpret_cast<int4*>(smem + 4 * layout.weight_words);  // per channel
  __shared__ KWord s_words[kMaxWords];

  const InputPackCall& in = call.input;
  const Im2colGeometry& g = in.im2col;
  const PackedView& out = call.out;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, group = lane / 4, quad = lane % 4;
  const int steps = layout.steps;

  // Once per block: the K-word table, the weights as B fragments, the thresholds.
  const int row_stride = static_cast<int>(g.in_w * g.in_c);
  for (int k = tid; k < layout.k4_padded; k += kThreads) {
    const int dh = k / call.row_words, jw = k - dh * call.row_words;
    s_words[k] = dh < g.kh ? KWord{dh * row_stride + jw * 4, static_cast<short>(dh), static_cast<short>(jw * 4)}
                           : KWord{0, -1, 0};
  }
  const uint4* weights = reinterpret_cast<const uint4*>(call.weights);
  uint4* s_b_quads = reinterpret_cast<uint4*>(s_b);
#pragma unroll 4  // independent loads in flight: a block's one wait for its weights
  for (int i = tid; i < layout.weight_words / 4; i += kThreads) s_b_quads[i] = __ldg(weights + i);
  for (int o = tid; o < call.out_channels_padded; o += kThreads)
    s_entries[o] = o < call.out_channels ? threshold_entry(call.thresholds, call.out_channels, o, call.levels)
                                         : empty_threshold_entry();
  __syncthreads();

  const OutputQuant q = input_quant(in);
  const int out_bits = out.quant.bits;
  const apnn_encoding_t out_enc = out.quant.encoding;
  OutputQuant target;  // output_quant() is host-only
  target.bits = out_bits;
  target.encoding = out_enc;
  target.lo = code_min(out_bits, out_enc);
  const LevelCodes codes(target);
  const int32_t coef0 = plane_coefficient(0, out_bits, out_enc);
  const int32_t coef1 = out_bits > 1 ? plane_coefficient(1, out_bits, out_enc) : 0;
  // The image chunk's bytes (the word reads stay inside them; < 2^31 by the contract), and the
  // offset of a field's last word.
  const int image_bytes = static_cast<int>(out.rows / (g.out_h * g.out_w) * g.in_h * g.in_w * g.in_c);
  const int last_offset = (g.kh - 1) * row_stride + (call.row_words - 1) * 4;

  const int64_t warp_tiles = (out.rows + kWarpPixels - 1) / kWarpPixels;
  for (int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + warp; tile < warp_tiles;
       tile += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t m0 = tile * kWarpPixels;  // this lane's pixels: m0 + t * 16 + group + 8 * h
    PixelField px[kMTiles][2];
    bool interior = true;
#pragma unroll
    for (int t = 0; t < kMTiles; ++t)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        bool inside;
        px[t][h] = pixel_field(call, div, static_cast<int>(m0) + t * 16 + group + 8 * h, last_offset, image_bytes, inside);
        interior = interior && inside;
      }
    const bool checked = !kBytes || !__all_sync(0xffffffffu, interior);
    int32_t row_sum[kMTiles][2] = {};

    for (int pass = 0; pass < layout.passes; ++pass) {
      const int c0 = pass * kFirstLayerChannels;
      int32_t acc[kMTiles][kTiles][4] = {};
      const uint2* s_pass = s_b + static_cast<size_t>(pass) * steps * kTiles * 32;
      if (checked)
        multiply_pass<kSignedX, kBytes, true>(acc, call, q, px, m0, s_words, s_pass, steps, lane, image_bytes);
      else
        multiply_pass<kSignedX, kBytes, false>(acc, call, q, px, m0, s_words, s_pass, steps, lane, image_bytes);

      // Threshold epilogue from the accumulators: this lane holds channels 8 t + 2 quad + {0, 1}
      // of pixels group and group + 8 of each m16 tile, i.e. bytes t % 4 of 32-channel word t / 4
      // (common/threshold_entry.cuh).
#pragma unroll
      for (int word = 0; word < kFirstLayerChannels / 32; ++word) {
        uint32_t levels[kMTiles][2][2] = {};  // [m16 tile][row half][channel parity]
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const int t = 4 * word + b, o = c0 + 8 * t + 2 * quad;
          const int4 entry[2] = {s_entries[o], s_entries[o + 1]};
#pragma unroll
          for (int i = 0; i < kMTiles; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
              for (int e = 0; e < 2; ++e) levels[i][h][e] |= entry_level(acc[i][t][2 * h + e], entry[e]) << (8 * b);
        }
        const int channels = call.out_channels - (c0 + 32 * word);
#pragma unroll
        for (int i = 0; i < kMTiles; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            uint32_t w0, w1;
            level_plane_words(levels[i][h][0], levels[i][h][1], codes, quad, channels, w0, w1);
            row_sum[i][h] += coef0 * __popc(w0) + coef1 * __popc(w1);  // the same on the 4 lanes
            const int64_t m = m0 + i * 16 + group + 8 * h;
            if (quad < out_bits && m < out.rows && channels > 0)
              out.planes[(quad * out.rows_padded + m) * out.words + (c0 / 32 + word)] = quad == 0 ? w0 : w1;
          }
      }
    }
#pragma unroll
    for (int i = 0; i < kMTiles; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + i * 16 + group + 8 * h;
        if (m < out.rows && quad == 0) out.row_sums[m] = row_sum[i][h];
      }
  }
}

template <bool kSignedX, bool kBytes>
void launch_first_layer(const FirstLayerCall& call, size_t smem_bytes, int multiprocessors, cudaStream_t stream) {
  const auto kernel = first_layer_kernel<kSignedX, kBytes>;
  allow_dynamic_shared_memory<first_layer_kernel<kSignedX, kBytes>>(kFirstLayerMaxSmem);
  // One wave of resident blocks (each pays for its copy of the weights once), fewer when the
  // layer has fewer tiles.
  int per_sm = 0;
  APNN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem_bytes));
  const int64_t warp_tiles = (call.out.rows + kWarpPixels - 1) / kWarpPixels;
  const int64_t blocks = std::min<int64_t>((warp_tiles + kWarps - 1) / kWarps, static_cast<int64_t>(multiprocessors) * std::max(per_sm, 1));
  const Im2colGeometry& g = call.input.im2col;
  const PixelDivisors div{FastDivisor(static_cast<uint32_t>(g.out_w)), FastDivisor(static_cast<uint32_t>(g.out_h))};
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem_bytes, stream>>>(call, div);
}

// Whether the Hopper kernel (first_layer_taps.h) can take the call's layer.
bool taps_serve(const FirstLayerCall& call, bool hopper) {
  const Im2colGeometry& g = call.input.im2col;
  return hopper && call.tap_weights != nullptr &&
         first_layer_taps_fit(g.kh, g.kw, g.stride_h, g.stride_w, g.in_c, call.out_channels);
}

}  // namespace

std::string first_layer_kernel_name(const FirstLayerCall& call, bool hopper, int taps) {
  return taps != 0 && taps_serve(call, hopper) ? "first_layer_taps_wgmma" : "first_layer_mma_sync";
}

void first_layer_cuda(const FirstLayerCall& call, int multiprocessors, bool hopper, int taps, cudaStream_t stream) {
  const Im2colGeometry& g = call.input.im2col;
  const int64_t smem_bytes = first_layer_smem_bytes(call.k4, call.out_channels);
  require(call.row_bytes == g.kw * g.in_c && call.row_words == (call.row_bytes + 3) / 4 &&
              call.k4 == g.kh * call.row_words && call.k4 >= 1 && call.k4 * 4 <= kFirstLayerMaxK && call.levels >= 1 &&
              call.levels <= kMaxThresholdLevels && call.out.quant.bits <= 2 &&
              call.out_channels_padded == (call.out_channels + kFirstLayerChannels - 1) / kFirstLayerChannels *
                                              kFirstLayerChannels &&
              smem_bytes <= kFirstLayerMaxSmem &&
              call.out.rows / (g.out_h * g.out_w) * g.in_h * g.in_w * g.in_c < (int64_t{1} << 31) - 64 &&
              g.kh * g.in_w * g.in_c < (int64_t{1} << 30) && call.out.rows < (int64_t{1} << 31) - 64,
          APNN_STATUS_INTERNAL_ERROR, "first_layer_cuda: a call outside the kernel's contract");
  if (call.out.rows == 0) return;
  const bool signed_x = call.input.out.quant.encoding == APNN_ENCODING_SIGNED;
  // Word reads need a 4-byte aligned image (a sub-batch of odd-sized images may start anywhere).
  const bool bytes = (call.input.dtype == APNN_DTYPE_UINT8 || call.input.dtype == APNN_DTYPE_INT8) &&
                     reinterpret_cast<uintptr_t>(call.input.values) % 4 == 0;
  // On Hopper, the wgmma kernel (first_layer_taps.h) takes the 8-bit images of the layers it
  // fits; float and int32 inputs, and sub-batches that start off a 4-byte boundary, run here.
  // taps = 0 keeps this kernel for all; 1 makes a layer the wgmma kernel cannot take an error
  // (tests use it to know which kernel ran).
  const bool taps_layer = taps_serve(call, hopper);
  if (taps == 1)
    require(taps_layer, APNN_STATUS_UNSUPPORTED,
            "first_layer_taps = 1, but the Hopper first-layer kernel cannot take this layer: it needs a device "
            "of compute capability 9.0, at most 4 input and 64 output channels, kernels of at most 16 x 16 and "
            "strides of at most 4");
  if (taps_layer && bytes && taps != 0)
    return first_layer_taps_cuda(call, signed_x, multiprocessors, stream);
  const size_t smem = static_cast<size_t>(smem_bytes);
  if (signed_x) {
    bytes ? launch_first_layer<true, true>(call, smem, multiprocessors, stream)
          : launch_first_layer<true, false>(call, smem, multiprocessors, stream);
  } else {
    bytes ? launch_first_layer<false, true>(call, smem, multiprocessors, stream)
          : launch_first_layer<false, false>(call, smem, multiprocessors, stream);
  }
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
