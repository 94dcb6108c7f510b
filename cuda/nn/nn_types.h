// The two small operations a network needs besides convolution (apnn.h, "Networks"):
// quantizing + packing the network input, and max pooling on packed codes. The per-pixel work
// is written once here as __host__ __device__ code, run by the host loops (nn_host.cc) and the
// CUDA kernels (nn_kernels.cu), so both backends compute the very same bits.
#pragma once

#include <cstdint>

#include "apnn/apnn.h"
#include "common/epilogue.h"
#include "common/quant.h"

namespace apnn {

// Shape and storage of a packed matrix, by value so it can be handed to a kernel
// (the same fields as PackedMatrix in common/backend.h).
struct PackedView {
  int64_t rows = 0, cols = 0, rows_padded = 0, words = 0;
  int64_t batch = 0, height = 0, width = 0;
  apnn_quant_t quant{};
  uint32_t* planes = nullptr;
  int32_t* row_sums = nullptr;
};

// The network input: rows x cols values (pixels x channels, backend memory) of `dtype`.
// Codes (INT8 / UINT8 / INT32) are packed as they are (the caller has range-checked them);
// FLOAT32 values are quantized with the epilogue's step-5 rule and `scale`.
//
// With `im2col.kh > 0` the packed rows are the first convolution's output pixels instead and
// the columns its (kh, kw, c) taps, so a narrow input (C = 3) is padded to 256 bits once per
// receptive field rather than once per pixel, and the convolution becomes 1 x 1. Taps on the
// padding get code 0, which is the real value 0 only without an offset (the network uses
// this form only for inputs with real_offset 0).
struct Im2colGeometry {
  int kh = 0, kw = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t in_h = 0, in_w = 0, in_c = 0;  // the input image
  int64_t out_h = 0, out_w = 0;          // the convolution's output
};

struct InputPackCall {
  const void* values = nullptr;
  apnn_dtype_t dtype = APNN_DTYPE_UINT8;
  float scale = 1.0f;
  Im2colGeometry im2col;
  PackedView out;
};

// Max pooling of a packed NHWC tensor x into y (same quant): window k x k, stride s, zero
// padding p; padding pixels are ignored (as if -infinity), every window has a real pixel.
struct PoolCall {
  PackedView x, y;
  int kernel = 2, stride = 2, pad = 0;
};

// The first convolution straight from the image (CUDA): 8-bit codes times weights of at
// most 8 bits on the integer dot-product units, the epilogue as a threshold table
// (common/epilogue_thresholds.h), codes written as packed planes. It needs no packed input
// and no 8-plane im2col tensor. Used under the im2col form's conditions (real_offset 0 input,
// so a padding tap is the code 0) plus: packed output of at most 2 bits, no residual, no
// pooling, KH * (KW*C rounded up to 4) <= kFirstLayerMaxK, every weight's real value in int8,
// and all of the layer's weights and thresholds in one block's shared memory
// (first_layer_smem_bytes <= kFirstLayerMaxSmem: each block keeps them for all its pixels).
constexpr int kFirstLayerMaxK = 1024;
constexpr int kFirstLayerMaxSmem = 160 * 1024;
struct FirstLayerCall {
  InputPackCall input;          // the image, its quantization (input.out.quant) and the geometry
  // Real values as int8, 4 per word along K = (kh, kw, c) with each kernel row's KW*C bytes
  // padded to whole words (so a word of the receptive field is 4 contiguous image bytes):
  // byte j of kernel row dh in word dh * row_words + j / 4; word k4 of channel o at
  // weights[first_layer_weight_index(k4, o, k4)]; first_layer_weight_words in all, zero past
  // the rows and channels.
  const int32_t* weights = nullptr;
  int out_channels = 0, out_channels_padded = 0;  // padded to kFirstLayerChannels
  int row_bytes = 0, row_words = 0;  // KW*C, and words per kernel row
  int k4 = 0;                        // KH * row_words
  const int32_t* thresholds = nullptr;  // (levels + 2) x out_channels
  int levels = 0;
  PackedView out;               // the layer's packed output tensor
  // The same weights as the Hopper kernel's wgmma operand (first_layer_tap_weight_offset), or null
  // where the layer's shape is not one it takes (first_layer_taps_fit).
  const uint8_t* tap_weights = nullptr;
};
constexpr int kFirstLayerChannels = 64;  // output channels per pass of a block

constexpr int kFirstLayerStepWords = 8;  // words of K per mma.m16n8k32 step

// The from-image weights' words: K padded to whole mma steps, out_channels to passes.
APNN_HD int64_t first_layer_weight_words(int k4, int out_channels) {
  return round_up(k4, kFirstLayerStepWords) * round_up(out_channels, kFirstLayerChannels);
}

// Shared memory of the from-image kernel: all of the weights, and a 16-byte threshold entry
// per padded channel.
APNN_HD int64_t first_layer_smem_bytes(int k4, int out_channels) {
  return 4 * first_layer_weight_words(k4, out_channels) + 16 * round_up(out_channels, kFirstLayerChannels);
}

// The from-image weights in the order the kernel's mma reads them, so a block copies them as
// they are: B fragments [64-channel pass][K step][n8 tile][lane][2], where lane (g, q) of n8
// tile t holds channel t * 8 + g, words q and q + 4 of the step (PTX ISA, mma.m16n8k32), and a
// warp reads 256 contiguous bytes per tile. Word k of channel o, for a layer of k4 K words.
APNN_HD int64_t first_layer_weight_index(int k, int o, int k4) {
  const int64_t steps = round_up(k4, kFirstLayerStepWords) / kFirstLayerStepWords;
  const int pass = o / kFirstLayerChannels, j = o % kFirstLayerChannels, step = k / kFirstLayerStepWords;
  const int lane = (j % 8) * 4 + k % 4, half = (k % kFirstLayerStepWords) / 4;
  return (((pass * steps + step) * (kFirstLayerChannels / 8) + j / 8) * 32 + lane) * 2 + half;
}

// The Hopper form of the from-image kernel (nn/first_layer_taps.cu) reads the receptive field
// as "tap groups": 4 taps of one kernel row, 4 bytes each (channels past C zero), 16 bytes in
// all, one row of a wgmma core matrix. A kernel row of KW taps has G = ceil(KW / 4) groups
// (taps past KW have zero weights), and a wgmma K step (32 bytes) takes two groups: (row, 2p)
// and (row, 2p + 1) for the first KH * (G / 2) steps; with G odd, the last groups of rows 2i and
// 2i + 1 after them (row KH, past the kernel, has zero weights).
constexpr int kTapGroupTaps = 4;
constexpr int kTapGroupBytes = 16;
constexpr int kFirstLayerTapsMaxKernel = 16;
constexpr int kFirstLayerTapsMaxStride = 4;
constexpr int kFirstLayerTapsTile = 8;  // output tiles of 8 x 8 pixels (the wgmma's 64 rows)

APNN_HD int first_layer_tap_groups(int kw) { return (kw + kTapGroupTaps - 1) / kTapGroupTaps; }
APNN_HD int first_layer_tap_steps(int kh, int kw) {
  const int g = first_layer_tap_groups(kw);
  return kh * (g / 2) + (g % 2) * ((kh + 1) / 2);
}
// Kernel row and group of group `half` (0 or 1) of K step `step`.
APNN_HD void first_layer_tap_unit(int kh, int kw, int step, int half, int& row, int& group) {
  const int g = first_layer_tap_groups(kw), paired = kh * (g / 2);
  if (step < paired) {
    row = step / (g / 2);
    group = 2 * (step % (g / 2)) + half;
  } else {
    row = 2 * (step - paired) + half;
    group = g - 1;
  }
}
// The weights as B operands: [step][half][channel 0..63][tap of the group][channel byte].
APNN_HD int64_t first_layer_tap_weight_bytes(int kh, int kw) {
  return int64_t{first_layer_tap_steps(kh, kw)} * 2 * kFirstLayerChannels * kTapGroupBytes;
}
// The first byte of output channel o's 16-byte entry for group `half` of K step `step`: tap t
// of the group (first_layer_tap_unit) at t * 4, input channel c at c.
APNN_HD int64_t first_layer_tap_weight_offset(int step, int half, int o) {
  return ((int64_t{step} * 2 + half) * kFirstLayerChannels + o) * kTapGroupBytes;
}
// Input rows of an output tile's window (one more than the taps read: the odd last group pair
// of an odd KH reads a row past the kernel, against zero weights).
APNN_HD int first_layer_tap_window_rows(int kh, int stride_h) {
  return (kFirstLayerTapsTile - 1) * stride_h + kh + 1;
}
// Window entries per row. Entry 8g + c holds group g of the tile's output column c; at stride 4
// (one group's width) group g of column c is the same 4 pixels as group g - 1 of column c + 1,
// so entry c + g holds them once.
APNN_HD int first_layer_tap_window_entries(int kw, int stride_w) {
  const int g = first_layer_tap_groups(kw);
  return stride_w == kTapGroupTaps ? kFirstLayerTapsTile + g - 1 : kFirstLayerTapsTile * g;
}
// Shared memory of the Hopper kernel: its weights, two windows and a threshold entry per channel.
APNN_HD int64_t first_layer_taps_smem_bytes(int kh, int kw, int stride_h, int stride_w) {
  const int64_t window = int64_t{first_layer_tap_window_rows(kh, stride_h)} *
                         first_layer_tap_window_entries(kw, stride_w) * kTapGroupBytes;
  return first_layer_tap_weight_bytes(kh, kw) + 2 * window + kFirstLayerChannels * 16;
}
// The layers the Hopper kernel takes: at most 4 input channels (one 4-byte word per tap) and 64
// output channels (one wgmma N), kernels up to 16 x 16, strides up to 4.
APNN_HD bool first_layer_taps_fit(int kh, int kw, int stride_h, int stride_w, int64_t in_c, int out_channels) {
  return in_c >= 1 && in_c <= 4 && out_channels >= 1 && out_channels <= kFirstLayerChannels && kh >= 1 &&
         kw >= 1 && kh <= kFirstLayerTapsMaxKernel && kw <= kFirstLayerTapsMaxKernel && stride_h >= 1 &&
         stride_w >= 1 && stride_h <= kFirstLayerTapsMaxStride && stride_w <= kFirstLayerTapsMaxStride &&
         first_layer_taps_smem_bytes(kh, kw, stride_h, stride_w) <= kFirstLayerMaxSmem;
}

APNN_HD int popcount32(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

// The quantization target of the packed input.
APNN_HD OutputQuant input_quant(const InputPackCall& c) {
  OutputQuant q;
  q.bits = c.out.quant.bits;
  q.encoding = c.out.quant.encoding;
  q.zero_point = c.out.quant.zero_point;
  q.lo = code_min(q.bits, q.encoding);
  q.hi = code_max(q.bits, q.encoding);
  return q;
}

// The code of input value `index`.
APNN_HD int32_t input_value_code(const InputPackCall& c, const OutputQuant& q, int64_t index) {
  switch (c.dtype) {
    case APNN_DTYPE_INT8: return static_cast<const int8_t*>(c.values)[index];
    case APNN_DTYPE_UINT8: return static_cast<const uint8_t*>(c.values)[index];
    case APNN_DTYPE_INT32: return static_cast<const int32_t*>(c.values)[index];
    default: return requantize(q, c.scale, static_cast<const float*>(c.values)[index]);
  }
}

// Where packed row `row` reads: its first value, and for im2col the image's first value and
// the top-left input coordinate of its receptive field (computed once per row).
struct InputRow {
  int64_t base = 0;
  int ih0 = 0, iw0 = 0;
};

APNN_HD InputRow input_row(const InputPackCall& c, int64_t row) {
  InputRow r;
  const Im2colGeometry& g = c.im2col;
  if (g.kh == 0) {
    r.base = row * c.out.cols;
    return r;
  }
  const int64_t ow = row % g.out_w, oh = (row / g.out_w) % g.out_h, n = row / (g.out_w * g.out_h);
  r.base = n * g.in_h * g.in_w * g.in_c;
  r.ih0 = static_cast<int>(oh * g.stride_h - g.pad_h);
  r.iw0 = static_cast<int>(ow * g.stride_w - g.pad_w);
  return r;
}

// The code of packed element (row, col), col < out.cols (32-bit index math per element: the
// columns are at most KH*KW*C < 2^31).
APNN_HD int32_t input_code(const InputPackCall& c, const OutputQuant& q, const InputRow& r, int col) {
  int64_t index = r.base + col;
  const Im2colGeometry& g = c.im2col;
  if (g.kh > 0) {
    const int in_c = static_cast<int>(g.in_c);
    const int tap = col / in_c, ch = col - tap * in_c;
    const int kh = tap / g.kw;
    const int ih = r.ih0 + kh, iw = r.iw0 + tap - kh * g.kw;
    if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) return 0;
    index = r.base + (static_cast<int64_t>(ih) * g.in_w + iw) * in_c + ch;
  }
  return input_value_code(c, q, index);
}

// Writes every plane word and the row sum of packed row `row` (the host loop; the CUDA kernel
// does the same per word with one lane per column).
APNN_HD void pack_input_row(const InputPackCall& c, int64_t row) {
  const PackedView& o = c.out;
  const OutputQuant q = input_quant(c);
  const InputRow r = input_row(c, row);
  int32_t sum = 0;
  for (int64_t w = 0; w < o.words; ++w) {
    uint32_t planes[kMaxBits] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int64_t col = w * 32 + lane;
      if (col >= o.cols) break;
      const int32_t code = input_code(c, q, r, static_cast<int>(col));
      const uint32_t b = code_bits(code, q.bits, q.encoding);
      for (int i = 0; i < q.bits; ++i) planes[i] |= ((b >> i) & 1u) << lane;
      sum += plane_part(code, q.encoding);
    }
    for (int i = 0; i < q.bits; ++i) o.planes[(i * o.rows_padded + row) * o.words + w] = planes[i];
  }
  o.row_sums[row] = sum;
}

// Max pooling of output pixel `row` of y (image n, position (oh, ow)), word `w` (32 channels)
// of it, on the bit-planes: a bit-sliced comparison from the top plane down (the top plane of
// signed codes has the negative weight, so its sense is flipped), then a lane-wise select.
// Returns the word's part of the row sum. kBits: the planes as a compile-time count (the CUDA
// kernel: the per-plane arrays stay in registers), or 0 for x.quant.bits at run time.
template <int kBits = 0>
APNN_HD int32_t max_pool_word(const PoolCall& c, int64_t n, int64_t oh, int64_t ow, int64_t row, int64_t w) {
  constexpr int kPlanes = kBits ? kBits : kMaxBits;
  const PackedView &x = c.x, &y = c.y;
  const int bits = kBits ? kBits : x.quant.bits;
  const bool is_signed = x.quant.encoding == APNN_ENCODING_SIGNED;
  const int64_t plane_words = x.rows_padded * x.words;
  uint32_t best[kPlanes] = {};
  bool first = true;
  // The window's taps in chunks whose loads are all issued before any is compared (a 3x3 window
  // of <= 2 planes at once): on a GPU each load is a round trip to L2.
  constexpr int kChunk = kPlanes <= 2 ? 9 : 3;
  const int taps = c.kernel * c.kernel;
  int a = 0, b = 0;  // the next tap's window row and column
  for (int t0 = 0; t0 < taps; t0 += kChunk) {
    uint32_t v[kChunk][kPlanes];
    bool inside[kChunk];
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      const int64_t ih = oh * c.stride - c.pad + a, iw = ow * c.stride - c.pad + b;
      inside[t] = t0 + t < taps && ih >= 0 && ih < x.height && iw >= 0 && iw < x.width;
      const uint32_t* src = inside[t] ? x.planes + ((n * x.height + ih) * x.width + iw) * x.words + w : x.planes;
#pragma unroll
      for (int i = 0; i < kPlanes && i < bits; ++i) v[t][i] = inside[t] ? src[i * plane_words] : 0u;
      if (++b == c.kernel) {
        b = 0;
        ++a;
      }
    }
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      if (!inside[t]) continue;
      if (first) {
#pragma unroll
        for (int i = 0; i < kPlanes && i < bits; ++i) best[i] = v[t][i];
        first = false;
        continue;
      }
      uint32_t greater = 0, equal = ~0u;
#pragma unroll
      for (int i = kPlanes - 1; i >= 0; --i) {
        if (i >= bits) continue;
        const uint32_t flip = is_signed && i == bits - 1 ? ~0u : 0u;  // the negative top plane
        const uint32_t vi = v[t][i] ^ flip, bi = best[i] ^ flip;
        greater |= equal & vi & ~bi;
        equal &= ~(vi ^ bi);
      }
#pragma unroll
      for (int i = 0; i < kPlanes && i < bits; ++i) best[i] = (v[t][i] & greater) | (best[i] & ~greater);
    }
  }
  int32_t sum = 0;
#pragma unroll
  for (int i = 0; i < kPlanes && i < bits; ++i) {
    y.planes[(i * y.rows_padded + row) * y.words + w] = best[i];
    sum += plane_coefficient(i, bits, x.quant.encoding) * popcount32(best[i]);
  }
  return sum;
}

// The words that hold channels: x and y may differ in row padding (a network's unpadded
// tensors), and y's padding words stay as planned (zero).
APNN_HD void max_pool_row(const PoolCall& c, int64_t row) {
  const int64_t ow = row % c.y.width, oh = (row / c.y.width) % c.y.height, n = row / (c.y.width * c.y.height);
  const int64_t real_words = (c.y.cols + 31) / 32;
  int32_t sum = 0;
  for (int64_t w = 0; w < real_words; ++w) sum += max_pool_word(c, n, oh, ow, row, w);
  c.y.row_sums[row] = sum;
}

}  // namespace apnn
