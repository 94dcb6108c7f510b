// Packing codes into bit-plane words a warp at a time (CUDA only): lane l holds the code bits
// of column 32*word + l; plane b's word is the warp's ballot of bit b, which lane b keeps, so
// lanes 0..planes-1 then store one plane word each.
#pragma once

#include <cstdint>

namespace apnn {

// kMaxPlanes: a compile-time bound on `planes`, so the loop unrolls into that many ballots.
template <int kMaxPlanes = 8>
__device__ __forceinline__ uint32_t warp_plane_word(uint32_t bits, int planes, int lane) {
  uint32_t mine = 0;
#pragma unroll
  for (int b = 0; b < kMaxPlanes; ++b) {
    if (b >= planes) break;  // warp-uniform
    const uint32_t word = __ballot_sync(0xffffffffu, (bits >> b) & 1u);
    if (lane == b) mine = word;
  }
  return mine;
}

__device__ __forceinline__ int32_t warp_sum(int32_t v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace apnn
