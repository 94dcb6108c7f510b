// The first convolution of a network straight from its 8-bit image (nn_types.h, FirstLayerCall).
//
// A bit-plane form of this layer multiplies 8 activation planes, each padded to 256 bits of K,
// and needs the image packed into an 8-plane im2col tensor first; on the INT8 tensor cores the
// same layer is one mma.m16n8k32 per 32 bytes of K. A block takes 64 output pixels: it gathers
// their receptive fields (the im2col rows, as bytes, code 0 on padding taps; each kernel row's
// KW*C bytes padded to whole words, so that a word is 4 contiguous image bytes: two aligned
// loads and a funnel shift for 8-bit images) into shared memory once, then for each 64-channel
// pass loads the int8 weights, and each warp multiplies 16 pixels by the 64 channels. The epilogue is the layer's threshold table
// (common/epilogue_thresholds.h), so the output codes equal the float epilogue's exactly; the 4
// lanes that hold a pixel's channels OR their bits of each plane word together and add their
// row-sum parts.
#include <algorithm>

#include "common/cuda_check.h"
#include "common/epilogue_thresholds.h"
#include "nn/nn_kernels.h"

namespace apnn {
namespace {

constexpr int kPixels = 64;      // output pixels per block
constexpr int kWarpPixels = 16;  // one m16 tile per warp
constexpr int kThreads = kPixels / kWarpPixels * 32;
constexpr int kTiles = kFirstLayerChannels / 8;  // n8 tiles per 64-channel pass
constexpr int kStepWords = 8;                    // 32 bytes of K per mma

// x codes (u8 or s8) times int8 weights, int32 accumulate: D = A B + D for a 16x32 A row-major
// and a 32x8 B column-major (PTX ISA, mma.m16n8k32 fragments).
template <bool kSignedX>
__device__ __forceinline__ void mma_i8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (kSignedX) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Shared memory: receptive fields (kPixels rows of `stride` words) and one pass of weights
// (64 channel rows of `stride` words), K padded to whole mma steps; then the pass's threshold
// table.
struct FirstLayerSmem {
  int k4_padded, stride;
  size_t patch, weights, thresholds, bytes;
  __host__ __device__ explicit FirstLayerSmem(int k4) {
    k4_padded = (k4 + kStepWords - 1) / kStepWords * kStepWords;
    stride = k4_padded + (36 - k4_padded % 32) % 32;  // = 4 (mod 32): a fragment's 8 rows x 4 words hit 32 banks
    patch = 0;
    weights = patch + static_cast<size_t>(kPixels) * stride * 4;
    thresholds = weights + static_cast<size_t>(kFirstLayerChannels) * stride * 4;
    bytes = thresholds + static_cast<size_t>(kThresholdRows) * kFirstLayerChannels * 4;
  }
};

// Word jw of kernel row dh of the receptive field at input row r: the codes of 4 contiguous
// image bytes, 0 past the row's KW*C bytes and on padding. kBytes: an 8-bit image, read as
// words where the kernel row lies inside the image.
template <bool kBytes>
__device__ __forceinline__ uint32_t receptive_word(const FirstLayerCall& call, const OutputQuant& q,
                                                   const InputRow& r, int dh, int jw, int64_t image_bytes) {
  const InputPackCall& in = call.input;
  const Im2colGeometry& g = in.im2col;
  const int ih = r.ih0 + dh, in_c = static_cast<int>(g.in_c);
  if (ih < 0 || ih >= g.in_h) return 0u;
  const int j0 = jw * 4, valid = min(4, call.row_bytes - j0);
  const int64_t row_start = r.base + (static_cast<int64_t>(ih) * g.in_w + r.iw0) * in_c;  // may precede the row
  if constexpr (kBytes) {
    const int64_t at = row_start + j0, aligned = at & ~int64_t{3};
    if (r.iw0 >= 0 && r.iw0 + g.kw <= g.in_w && aligned + 8 <= image_bytes) {
      const uint32_t* words = reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(in.values) + aligned);
      const uint32_t word = __funnelshift_r(__ldg(words), __ldg(words + 1), static_cast<uint32_t>(at & 3) * 8);
      return valid >= 4 ? word : word & ((1u << (8 * valid)) - 1u);
    }
  }
  uint32_t word = 0;
  for (int b = 0; b < valid; ++b) {
    const int j = j0 + b, dw = j / in_c, iw = r.iw0 + dw;
    if (iw >= 0 && iw < g.in_w)
      word |= (static_cast<uint32_t>(input_value_code(in, q, row_start + j)) & 0xffu) << (8 * b);
  }
  return word;
}

template <bool kSignedX, bool kBytes>
__global__ void __launch_bounds__(kThreads) first_layer_kernel(const FirstLayerCall call) {
  extern __shared__ __align__(16) unsigned char smem[];
  const FirstLayerSmem layout(call.k4);
  uint32_t* s_patch = reinterpret_cast<uint32_t*>(smem + layout.patch);
  uint32_t* s_weights = reinterpret_cast<uint32_t*>(smem + layout.weights);  // [channel][k4]
  int32_t* s_thresholds = reinterpret_cast<int32_t*>(smem + layout.thresholds);
  __shared__ InputRow s_row[kPixels];
  __shared__ int s_k_word[kFirstLayerMaxK / 4];  // K word -> (kernel row << 16 | word in row), -1 past the rows

  const InputPackCall& in = call.input;
  const Im2colGeometry& g = in.im2col;
  const PackedView& out = call.out;
  const int tid = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kPixels;
  const int k4_padded = layout.k4_padded, stride = layout.stride;
  // The image chunk's bytes (the word reads stay inside it).
  const int64_t image_bytes = out.rows / (g.out_h * g.out_w) * g.in_h * g.in_w * g.in_c;

  if (tid < kPixels) s_row[tid] = m0 + tid < out.rows ? input_row(in, m0 + tid) : InputRow{0, -(1 << 20), 0};
  for (int k4 = tid; k4 < k4_padded; k4 += kThreads) {
    const int dh = k4 / call.row_words;
    s_k_word[k4] = dh < g.kh ? dh << 16 | (k4 - dh * call.row_words) : -1;
  }
  __syncthreads();

  // Receptive fields: taps on padding, pixels past the end and K past the last kernel row are
  // the code 0. Consecutive threads take consecutive words (receptive_word); element e = px *
  // k4_padded + k4 steps by kThreads, so (px, k4) advance by constant steps and the word's kernel
  // row comes from s_k_word: no index division runs per word (H100, batch 8: AlexNet conv1
  // 39.4 -> 35.1 us, ResNet-18 conv1 67 -> 61 us). Unrolled so that several words' loads are in
  // flight at once (the loop is latency-bound). (A gather by kernel rows, one thread per pixel
  // row and one load per word, ran slower for 11x11x3 and 7x7x3 rows and no faster for 3x3x3.)
  const OutputQuant q = input_quant(in);
  {
    const int px_step = kThreads / k4_padded, k4_step = kThreads % k4_padded;
    int px = tid / k4_padded, k4 = tid % k4_padded;
#pragma unroll 4
    for (; px < kPixels; px += px_step, k4 += k4_step) {
      if (k4 >= k4_padded) {
        k4 -= k4_padded;
        ++px;
        if (px >= kPixels) break;
      }
      const int entry = s_k_word[k4];
      s_patch[px * stride + k4] =
          entry >= 0 ? receptive_word<kBytes>(call, q, s_row[px], entry >> 16, entry & 0xffff, image_bytes) : 0u;
    }
  }

  const int warp = tid / 32, lane = tid % 32, group = lane / 4, quad = lane % 4;
  const int out_bits = out.quant.bits;
  const apnn_encoding_t out_enc = out.quant.encoding;
  OutputQuant target;  // output_quant() is host-only
  target.bits = out_bits;
  target.encoding = out_enc;
  target.zero_point = out.quant.zero_point;
  target.lo = code_min(out_bits, out_enc);
  target.hi = code_max(out_bits, out_enc);
  int32_t row_sum[2] = {};  // pixels group and group + 8 of this warp's 16
  const int real_words = (call.out_channels + 31) / 32;
  const uint32_t* a_row = s_patch + (warp * kWarpPixels + group) * stride;

  for (int c0 = 0; c0 < call.out_channels; c0 += kFirstLayerChannels) {
    __syncthreads();  // the patch is complete; the previous pass is done with weights / table
#pragma unroll 4
    for (int i = tid; i < k4_padded * kFirstLayerChannels; i += kThreads) {
      const int k4 = i / kFirstLayerChannels, j = i - k4 * kFirstLayerChannels;
      s_weights[j * stride + k4] =
          k4 < call.k4 ? static_cast<uint32_t>(call.weights[static_cast<int64_t>(k4) * call.out_channels_padded + c0 + j])
                       : 0u;
    }
    for (int i = tid; i < (call.levels + 2) * kFirstLayerChannels; i += kThreads) {
      const int row = i / kFirstLayerChannels, j = i - row * kFirstLayerChannels, o = c0 + j;
      s_thresholds[i] = o < call.out_channels ? call.thresholds[static_cast<int64_t>(row) * call.out_channels + o] : 0;
    }
    __syncthreads();

    int32_t acc[kTiles][4] = {};
    for (int step = 0; step < k4_padded; step += kStepWords) {
      const int kw = step + quad;
      const uint32_t a[4] = {a_row[kw], a_row[8 * stride + kw], a_row[kw + 4], a_row[8 * stride + kw + 4]};
#pragma unroll
      for (int t = 0; t < kTiles; ++t) {
        const uint32_t* b = s_weights + (t * 8 + group) * stride + kw;
        mma_i8<kSignedX>(acc[t], a, b[0], b[4]);
      }
    }

    // Threshold epilogue: this lane holds channels t * 8 + 2 * quad + {0, 1} of pixels group and
    // group + 8; the 4 lanes of a group together hold all 64 (two plane words).
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + warp * kWarpPixels + group + 8 * h;
      uint32_t words[2][2] = {};  // [plane][32-channel word]
#pragma unroll
      for (int t = 0; t < kTiles; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = t * 8 + 2 * quad + e, o = c0 + j;
          if (o >= call.out_channels) continue;
          const int32_t* th = s_thresholds + j;
          const int32_t y = acc[t][2 * h + e];
          int passed = 0;
#pragma unroll
          for (int l = 0; l < kMaxThresholdLevels; ++l)
            passed += l < call.levels && y >= th[(l + 2) * kFirstLayerChannels] ? 1 : 0;
          const int32_t code = code_of_level(target, th[0] + th[kFirstLayerChannels] * passed);
          const uint32_t bits = code_bits(code, out_bits, out_enc);
          words[0][t / 4] |= (bits & 1u) << (j % 32);
          words[1][t / 4] |= ((bits >> 1) & 1u) << (j % 32);
          row_sum[h] += plane_part(code, out_enc);
        }
#pragma unroll
      for (int b = 0; b < 2; ++b)
#pragma unroll
        for (int w = 0; w < 2; ++w) {
          uint32_t whole = words[b][w];
          whole |= __shfl_xor_sync(0xffffffffu, whole, 1);
          whole |= __shfl_xor_sync(0xffffffffu, whole, 2);
          const int word = c0 / 32 + w;
          if (b < out_bits && m < out.rows && quad == 0 && word < real_words)
            out.planes[(b * out.rows_padded + m) * out.words + word] = whole;
        }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t m = m0 + warp * kWarpPixels + group + 8 * h;
    int32_t sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (m < out.rows && quad == 0) out.row_sums[m] = sum;
  }
}

template <bool kSignedX, bool kBytes>
void launch_first_layer(const FirstLayerCall& call, size_t smem_bytes, unsigned blocks, cudaStream_t stream) {
  allow_dynamic_shared_memory<first_layer_kernel<kSignedX, kBytes>>(
      static_cast<int>(FirstLayerSmem(kFirstLayerMaxK / 4).bytes));
  first_layer_kernel<kSignedX, kBytes><<<blocks, kThreads, smem_bytes, stream>>>(call);
}

}  // namespace

void first_layer_cuda(const FirstLayerCall& call, cudaStream_t stream) {
  const Im2colGeometry& g = call.input.im2col;
  require(call.row_bytes == g.kw * g.in_c && call.row_words == (call.row_bytes + 3) / 4 &&
              call.k4 == g.kh * call.row_words && call.k4 >= 1 && call.k4 * 4 <= kFirstLayerMaxK && call.levels >= 1 &&
              call.levels <= kMaxThresholdLevels && call.out.quant.bits <= 2 &&
              call.out_channels_padded % kFirstLayerChannels == 0 && call.out_channels <= call.out_channels_padded,
          APNN_STATUS_INTERNAL_ERROR, "first_layer_cuda: a call outside the kernel's contract");
  const size_t smem_bytes = FirstLayerSmem(call.k4).bytes;
  const unsigned blocks = static_cast<unsigned>((call.out.rows + kPixels - 1) / kPixels);
  const bool signed_x = call.input.out.quant.encoding == APNN_ENCODING_SIGNED;
  // Word reads need a 4-byte aligned image (a sub-batch of odd-sized images may start anywhere).
  const bool bytes = (call.input.dtype == APNN_DTYPE_UINT8 || call.input.dtype == APNN_DTYPE_INT8) &&
                     reinterpret_cast<uintptr_t>(call.input.values) % 4 == 0;
  if (signed_x) {
    bytes ? launch_first_layer<true, true>(call, smem_bytes, blocks, stream)
          : launch_first_layer<true, false>(call, smem_bytes, blocks, stream);
  } else {
    bytes ? launch_first_layer<false, true>(call, smem_bytes, blocks, stream)
          : launch_first_layer<false, false>(call, smem_bytes, blocks, stream);
  }
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
