// The first convolution of a network straight from its 8-bit image (nn_types.h, FirstLayerCall).
//
// A bit-plane form of this layer multiplies 8 activation planes, each padded to 256 bits of K,
// and needs the image packed into an 8-plane im2col tensor first; on the dot-product units the
// same layer is K/4 dp4a per output. A block takes 64 output pixels: it gathers their
// receptive fields (the im2col rows, as bytes, code 0 on padding taps) into shared memory once,
// then for each 64-channel pass loads the int8 weights, and each thread accumulates 16 channels
// of two pixels (pixel p and p + 32). The epilogue is the layer's threshold table (common/epilogue_thresholds.h), so
// the output codes equal the float epilogue's exactly; lanes of a pixel OR their 16-channel
// halves of each plane word together and add their row-sum parts.
#include <algorithm>

#include "common/cuda_check.h"
#include "common/epilogue_thresholds.h"
#include "nn/nn_kernels.h"

namespace apnn {
namespace {

constexpr int kPixels = 64;               // output pixels per block
constexpr int kPixelsPerThread = 2;       // each weight read from shared memory feeds two pixels
constexpr int kGroups = 4;                // 16-channel groups per 64-channel pass
constexpr int kThreads = kPixels / kPixelsPerThread * kGroups;
constexpr int kGroupChannels = kFirstLayerChannels / kGroups;
static_assert(kGroupChannels == 16, "two groups fill one 32-channel plane word");

// Where channel j of a 64-channel pass sits in a shared-memory row of weights or thresholds:
// the 4-channel quads of the four groups interleave, so the four 16-byte reads (one per group)
// a warp makes for the same quad index fall into 16 different banks.
__device__ __forceinline__ int swizzled_channel(int j) {
  const int group = j / kGroupChannels, quad = (j % kGroupChannels) / 4;
  return (quad * kGroups + group) * 4 + j % 4;
}

template <bool kSignedX>
__device__ __forceinline__ int32_t dot4(uint32_t x, uint32_t w, int32_t acc) {
  int32_t d;
  if constexpr (kSignedX) {
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(w), "r"(acc));
  } else {
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(w), "r"(acc));
  }
  return d;
}

// Shared memory: receptive fields (kPixels rows of `stride` words; an odd stride keeps the 8
// pixels a warp reads in 8 banks), one pass of weights (k4 x 64 words), the tap table, the
// pass's threshold table.
struct FirstLayerSmem {
  int stride;
  size_t patch, weights, offset, tap, thresholds, bytes;
  __host__ __device__ explicit FirstLayerSmem(int k, int k4) {
    stride = k4 | 1;
    patch = 0;
    weights = patch + static_cast<size_t>(kPixels) * stride * 4;
    offset = weights + static_cast<size_t>(k4) * kFirstLayerChannels * 4;
    tap = offset + static_cast<size_t>(k) * 4;
    thresholds = tap + static_cast<size_t>(k) * 4;
    bytes = thresholds + static_cast<size_t>(kThresholdRows) * kFirstLayerChannels * 4;
  }
};

template <bool kSignedX>
__global__ void __launch_bounds__(kThreads) first_layer_kernel(const FirstLayerCall call) {
  extern __shared__ __align__(16) unsigned char smem[];
  const FirstLayerSmem layout(call.k, call.k4);
  uint32_t* s_patch = reinterpret_cast<uint32_t*>(smem + layout.patch);
  uint32_t* s_weights = reinterpret_cast<uint32_t*>(smem + layout.weights);
  int* s_offset = reinterpret_cast<int*>(smem + layout.offset);    // (dh * in_w + dw) * in_c + ch
  short2* s_tap = reinterpret_cast<short2*>(smem + layout.tap);     // (dh, dw)
  int32_t* s_thresholds = reinterpret_cast<int32_t*>(smem + layout.thresholds);
  __shared__ InputRow s_row[kPixels];

  const InputPackCall& in = call.input;
  const Im2colGeometry& g = in.im2col;
  const PackedView& out = call.out;
  const int tid = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kPixels;
  const int in_c = static_cast<int>(g.in_c), in_w = static_cast<int>(g.in_w);

  for (int k = tid; k < call.k; k += kThreads) {
    const int tap = k / in_c, ch = k - tap * in_c, dh = tap / g.kw, dw = tap - dh * g.kw;
    s_offset[k] = (dh * in_w + dw) * in_c + ch;
    s_tap[k] = make_short2(static_cast<short>(dh), static_cast<short>(dw));
  }
  if (tid < kPixels) s_row[tid] = m0 + tid < out.rows ? input_row(in, m0 + tid) : InputRow{0, -(1 << 20), 0};
  __syncthreads();

  // Receptive fields, a word (4 taps x channels) per step; taps on padding (and pixels past the
  // end) are the code 0.
  const OutputQuant q = input_quant(in);
  // Unrolled so that several words' loads are in flight at once (the loop is latency-bound).
#pragma unroll 4
  for (int e = tid; e < kPixels * call.k4; e += kThreads) {
    const int px = e / call.k4, k4 = e - px * call.k4;
    const InputRow r = s_row[px];
    const int64_t corner = r.base + (static_cast<int64_t>(r.ih0) * in_w + r.iw0) * in_c;  // may be off the image
    uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int k = k4 * 4 + b;
      if (k >= call.k) break;
      const short2 t = s_tap[k];
      const int ih = r.ih0 + t.x, iw = r.iw0 + t.y;
      if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w)
        word |= (static_cast<uint32_t>(input_value_code(in, q, corner + s_offset[k])) & 0xffu) << (8 * b);
    }
    s_patch[px * layout.stride + k4] = word;
  }

  const int pair = tid / kGroups, group = tid % kGroups;
  constexpr int kPairStride = kPixels / kPixelsPerThread;  // this thread's pixels: pair, pair + 32
  const int out_bits = out.quant.bits;
  const apnn_encoding_t out_enc = out.quant.encoding;
  OutputQuant target;  // output_quant() is host-only
  target.bits = out_bits;
  target.encoding = out_enc;
  target.zero_point = out.quant.zero_point;
  target.lo = code_min(out_bits, out_enc);
  target.hi = code_max(out_bits, out_enc);
  int32_t row_sum[kPixelsPerThread] = {};
  const int real_words = (call.out_channels + 31) / 32;

  for (int c0 = 0; c0 < call.out_channels; c0 += kFirstLayerChannels) {
    __syncthreads();  // the patch is complete; the previous pass is done with weights / table
    for (int i = tid; i < call.k4 * kFirstLayerChannels; i += kThreads) {
      const int k4 = i / kFirstLayerChannels, j = i - k4 * kFirstLayerChannels;
      s_weights[k4 * kFirstLayerChannels + swizzled_channel(j)] =
          static_cast<uint32_t>(call.weights[static_cast<int64_t>(k4) * call.out_channels_padded + c0 + j]);
    }
    for (int i = tid; i < (call.levels + 2) * kFirstLayerChannels; i += kThreads) {
      const int row = i / kFirstLayerChannels, j = i - row * kFirstLayerChannels, o = c0 + j;
      s_thresholds[row * kFirstLayerChannels + swizzled_channel(j)] =
          o < call.out_channels ? call.thresholds[static_cast<int64_t>(row) * call.out_channels + o] : 0;
    }
    __syncthreads();

    int32_t acc[kPixelsPerThread][kGroupChannels] = {};
    const uint32_t* x_row = s_patch + pair * layout.stride;
    const uint4* w_col = reinterpret_cast<const uint4*>(s_weights) + group;  // quad v at [v * kGroups]
    for (int k4 = 0; k4 < call.k4; ++k4) {
      uint32_t x[kPixelsPerThread];
#pragma unroll
      for (int p = 0; p < kPixelsPerThread; ++p) x[p] = x_row[p * kPairStride * layout.stride + k4];
      const uint4* w = w_col + k4 * (kFirstLayerChannels / 4);
#pragma unroll
      for (int v = 0; v < kGroupChannels / 4; ++v) {
        const uint4 w4 = w[v * kGroups];
#pragma unroll
        for (int p = 0; p < kPixelsPerThread; ++p) {
          acc[p][4 * v + 0] = dot4<kSignedX>(x[p], w4.x, acc[p][4 * v + 0]);
          acc[p][4 * v + 1] = dot4<kSignedX>(x[p], w4.y, acc[p][4 * v + 1]);
          acc[p][4 * v + 2] = dot4<kSignedX>(x[p], w4.z, acc[p][4 * v + 2]);
          acc[p][4 * v + 3] = dot4<kSignedX>(x[p], w4.w, acc[p][4 * v + 3]);
        }
      }
    }

    // Threshold epilogue; this thread's 16 channels are one half of a 32-channel word.
    const int shift = (group & 1) * kGroupChannels;
    const int word = (c0 + group * kGroupChannels) / 32;
#pragma unroll
    for (int p = 0; p < kPixelsPerThread; ++p) {
      const int64_t m = m0 + pair + p * kPairStride;
      uint32_t half[2] = {0u, 0u};
#pragma unroll
      for (int i = 0; i < kGroupChannels; ++i) {
        const int j = group * kGroupChannels + i, o = c0 + j;
        if (o >= call.out_channels) continue;
        const int32_t* t = s_thresholds + swizzled_channel(j);
        int passed = 0;
#pragma unroll
        for (int l = 0; l < kMaxThresholdLevels; ++l)
          passed += l < call.levels && acc[p][i] >= t[(l + 2) * kFirstLayerChannels] ? 1 : 0;
        const int32_t code = code_of_level(target, t[0] + t[kFirstLayerChannels] * passed);
        const uint32_t bits = code_bits(code, out_bits, out_enc);
        half[0] |= (bits & 1u) << (shift + i);
        half[1] |= ((bits >> 1) & 1u) << (shift + i);
        row_sum[p] += plane_part(code, out_enc);
      }
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const uint32_t whole = half[b] | __shfl_xor_sync(0xffffffffu, half[b], 1);
        if (b < out_bits && m < out.rows && (group & 1) == 0 && word < real_words)
          out.planes[(b * out.rows_padded + m) * out.words + word] = whole;
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kPixelsPerThread; ++p) {
    const int64_t m = m0 + pair + p * kPairStride;
    int32_t sum = row_sum[p];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (m < out.rows && group == 0) out.row_sums[m] = sum;
  }
}

}  // namespace

void first_layer_cuda(const FirstLayerCall& call, cudaStream_t stream) {
  require(call.k >= 1 && call.k <= kFirstLayerMaxK && call.k4 == (call.k + 3) / 4 && call.levels >= 1 &&
              call.levels <= kMaxThresholdLevels && call.out.quant.bits <= 2 &&
              call.out_channels_padded % kFirstLayerChannels == 0 && call.out_channels <= call.out_channels_padded,
          APNN_STATUS_INTERNAL_ERROR, "first_layer_cuda: a call outside the kernel's contract");
  const FirstLayerSmem layout(call.k, call.k4);
  const unsigned blocks = static_cast<unsigned>((call.out.rows + kPixels - 1) / kPixels);
  const bool signed_x = call.input.out.quant.encoding == APNN_ENCODING_SIGNED;
  auto launch = [&](auto kernel) {
    static bool attribute_set = false;  // dynamic shared memory above 48 KB must be opted into
    if (!attribute_set) {
      APNN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(FirstLayerSmem(kFirstLayerMaxK, kFirstLayerMaxK / 4).bytes)));
      attribute_set = true;
    }
    kernel<<<blocks, kThreads, layout.bytes, stream>>>(call);
  };
  if (signed_x) {
    launch(first_layer_kernel<true>);
  } else {
    launch(first_layer_kernel<false>);
  }
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
