// Outputs of a thread that holds mma D-fragment values, channels 8 j + 2 (lane % 4) + e of a row
// (e = 0, 1): the finishes from the accumulators (conv_register_finish.cuh, conv_halo.cu).
#pragma once

#include <cstdint>

#include "common/epilogue.h"

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

// The residual code (its plane bits) of channel `bit` of those words: the threshold table part.
__device__ __forceinline__ int residual_code(const uint32_t (&words)[2], int bit) {
  return static_cast<int>((words[0] >> bit) & 1u) | static_cast<int>((words[1] >> bit) & 1u) << 1;
}

}  // namespace conv_detail
}  // namespace apnn
