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
struct InputPackCall {
  const void* values = nullptr;
  apnn_dtype_t dtype = APNN_DTYPE_UINT8;
  float scale = 1.0f;
  PackedView out;
};

// Max pooling of a packed NHWC tensor x into y (same quant): window k x k, stride s, zero
// padding p; padding pixels are ignored (as if -infinity), every window has a real pixel.
struct PoolCall {
  PackedView x, y;
  int kernel = 2, stride = 2, pad = 0;
};

APNN_HD int popcount32(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

APNN_HD int32_t input_code(const InputPackCall& c, const OutputQuant& q, int64_t index) {
  switch (c.dtype) {
    case APNN_DTYPE_INT8: return static_cast<const int8_t*>(c.values)[index];
    case APNN_DTYPE_UINT8: return static_cast<const uint8_t*>(c.values)[index];
    case APNN_DTYPE_INT32: return static_cast<const int32_t*>(c.values)[index];
    default: return requantize(q, c.scale, static_cast<const float*>(c.values)[index]);
  }
}

// Writes every plane word and the row sum of input pixel `row`.
APNN_HD void pack_input_row(const InputPackCall& c, int64_t row) {
  const PackedView& o = c.out;
  const int bits = o.quant.bits;
  OutputQuant q;
  q.bits = bits;
  q.encoding = o.quant.encoding;
  q.zero_point = o.quant.zero_point;
  q.lo = code_min(bits, q.encoding);
  q.hi = code_max(bits, q.encoding);
  int32_t sum = 0;
  for (int64_t w = 0; w < o.words; ++w) {
    uint32_t planes[kMaxBits] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int64_t col = w * 32 + lane;
      if (col >= o.cols) break;
      const int32_t code = input_code(c, q, row * o.cols + col);
      const uint32_t b = code_bits(code, bits, q.encoding);
      for (int i = 0; i < bits; ++i) planes[i] |= ((b >> i) & 1u) << lane;
      sum += plane_part(code, q.encoding);
    }
    for (int i = 0; i < bits; ++i) o.planes[(i * o.rows_padded + row) * o.words + w] = planes[i];
  }
  o.row_sums[row] = sum;
}

// Max pooling of output pixel `row` of y, 32 channels at a time on the bit-planes: a
// bit-sliced comparison from the top plane down (the top plane of signed codes has the
// negative weight, so its sense is flipped), then a lane-wise select.
APNN_HD void max_pool_row(const PoolCall& c, int64_t row) {
  const PackedView &x = c.x, &y = c.y;
  const int bits = x.quant.bits;
  const bool is_signed = x.quant.encoding == APNN_ENCODING_SIGNED;
  const int64_t ow = row % y.width, oh = (row / y.width) % y.height, n = row / (y.width * y.height);
  int32_t sum = 0;
  for (int64_t w = 0; w < x.words; ++w) {
    uint32_t best[kMaxBits] = {};
    bool first = true;
    for (int a = 0; a < c.kernel; ++a) {
      const int64_t ih = oh * c.stride - c.pad + a;
      if (ih < 0 || ih >= x.height) continue;
      for (int b = 0; b < c.kernel; ++b) {
        const int64_t iw = ow * c.stride - c.pad + b;
        if (iw < 0 || iw >= x.width) continue;
        const int64_t src = (n * x.height + ih) * x.width + iw;
        uint32_t v[kMaxBits];
        for (int i = 0; i < bits; ++i) v[i] = x.planes[(i * x.rows_padded + src) * x.words + w];
        if (first) {
          for (int i = 0; i < bits; ++i) best[i] = v[i];
          first = false;
          continue;
        }
        uint32_t greater = 0, equal = ~0u;
        for (int i = bits - 1; i >= 0; --i) {
          const uint32_t vi = (is_signed && i == bits - 1) ? ~v[i] : v[i];
          const uint32_t bi = (is_signed && i == bits - 1) ? ~best[i] : best[i];
          greater |= equal & vi & ~bi;
          equal &= ~(vi ^ bi);
        }
        for (int i = 0; i < bits; ++i) best[i] = (v[i] & greater) | (best[i] & ~greater);
      }
    }
    for (int i = 0; i < bits; ++i) {
      y.planes[(i * y.rows_padded + row) * y.words + w] = best[i];
      sum += plane_coefficient(i, bits, x.quant.encoding) * popcount32(best[i]);
    }
  }
  y.row_sums[row] = sum;
}

}  // namespace apnn
