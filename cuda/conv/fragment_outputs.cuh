// Outputs of a thread that holds mma D-fragment values, channels 8 j + 2 (lane % 4) + e of a row
// (e = 0, 1): the finishes from the accumulators (conv_register_finish.cuh, conv_halo.cu).
#pragma once

#include <cstdint>

#include "common/epilogue.h"
#include "common/quant.h"
#include "common/threshold_entry.cuh"

namespace apnn {
namespace conv_detail {

// Stores channels o and o + 1 (those below `channels`) of an int32 output row. pairs: the
// channel count is even, so (o, o + 1) is 8-byte aligned and goes out as one store (a warp then
// writes whole 32-byte sectors).
__device__ __forceinline__ void store_channel_pair(int32_t* row, int o, int channels, bool pairs, int32_t v0,
                                                   int32_t v1) {
  if (pairs && o + 1 < channels) {
    *reinterpret_cast<int2*>(row + o) = make_int2(v0, v1);
    return;
  }
  if (o < channels) row[o] = v0;
  if (o + 1 < channels) row[o + 1] = v1;
}

// The plane words (<= 2 planes) of a packed residual at output row m, in the 32-channel word of
// channel o0; 0 past its planes or where !valid.
__device__ __forceinline__ void residual_words(const ResidualParams& r, int64_t m, int o0, bool valid,
                                               uint32_t (&words)[2]) {
#pragma unroll
  for (int b = 0; b < 2; ++b)
    words[b] = valid && b < r.bits ? __ldg(r.planes + (b * r.rows_padded + m) * r.words + o0 / 32) : 0u;
}

// The residual codes (their plane bits: the threshold table parts) of the 8 channels 8 b + 2 quad
// + e of a 32-channel word whose planes are r0 and r1, side by side: bits 8 b + 2 e .. + 1.
__device__ __forceinline__ uint32_t quad_residual_codes(uint32_t r0, uint32_t r1, int quad) {
  r0 >>= 2 * quad;
  r1 >>= 2 * quad;
  return (r0 & 0x01010101u) | ((r1 & 0x01010101u) << 1) | ((r0 & 0x02020202u) << 1) | ((r1 & 0x02020202u) << 2);
}
__device__ __forceinline__ int residual_code(uint32_t codes, int b, int e) {
  return static_cast<int>((codes >> (8 * b + 2 * e)) & 3u);
}

// The coefficient of each (activation plane ip, weight plane jq) product, cx[ip] * cw[jq]: a
// finish combines an output's plane products with one multiply-add each.
template <int P, int Q>
struct PairCoefficients {
  uint32_t c[P][Q];
  __device__ PairCoefficients(const int32_t (&cx)[8], const int32_t (&cw)[8]) {
#pragma unroll
    for (int ip = 0; ip < P; ++ip)
#pragma unroll
      for (int jq = 0; jq < Q; ++jq) c[ip][jq] = static_cast<uint32_t>(cx[ip]) * static_cast<uint32_t>(cw[jq]);
  }
};

// A packed output of at most 2 bits as the finishes write it: the level-to-code mapping, each
// plane's row-sum coefficient (common/quant.h), and where plane p of word w of row m goes.
struct PackedOutput {
  LevelCodes codes;
  int32_t coef0, coef1;
  uint32_t* planes;
  int64_t plane_words, words;
  __device__ PackedOutput(const OutputQuant& q, uint32_t* out_planes, int64_t rows_padded, int64_t out_words)
      : codes(q),
        coef0(plane_coefficient(0, q.bits, q.encoding)),
        coef1(q.bits > 1 ? plane_coefficient(1, q.bits, q.encoding) : 0),
        planes(out_planes),
        plane_words(rows_padded * out_words),
        words(out_words) {}
  // A word's part of its row's sum: its planes' popcounts times their coefficients.
  __device__ int32_t row_sum_part(uint32_t w0, uint32_t w1) const { return coef0 * __popc(w0) + coef1 * __popc(w1); }
  __device__ uint32_t& word(int plane, int64_t row, int w) const { return planes[plane * plane_words + row * words + w]; }
};

}  // namespace conv_detail
}  // namespace apnn
