// The threshold table (epilogue_thresholds.h) in the form a kernel finishes outputs from its
// registers with: one int4 per channel, and the packing of levels into plane words. Used where
// a thread holds mma accumulators whose channels are 8 b + 2 (lane % 4) + e of a 32-channel
// word (b = 0..3, e = 0..1; the m16n8 D fragment's columns): the convolution's register finish
// and the first layer.
#pragma once

#include <climits>
#include <cstdint>

#include "common/epilogue.h"
#include "common/quant.h"

namespace apnn {

// One channel's entry, read from the (levels + 2) x O table: x, y, z are T_1..T_3 (INT32_MAX,
// never reached, past the table's levels) and w holds the level after k passed thresholds in
// bits 2k..2k+1 (levels of <= 2-bit outputs fit in 2 bits).
__device__ __forceinline__ int4 threshold_entry(const int32_t* table, int64_t O, int64_t o, int levels) {
  const int32_t base = table[o], direction = table[O + o];
  int32_t t[3];
#pragma unroll
  for (int k = 0; k < 3; ++k) t[k] = k < levels ? table[(k + 2) * O + o] : INT32_MAX;
  int32_t level_of_count = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k) level_of_count |= ((base + direction * k) & 3) << (2 * k);
  return make_int4(t[0], t[1], t[2], level_of_count);
}

// The entry of a channel past the tensor's last: level 0 everywhere (masked off when packed).
__device__ __forceinline__ int4 empty_threshold_entry() { return make_int4(INT32_MAX, INT32_MAX, INT32_MAX, 0); }

// The entry of channel o in part `part` of the epilogue's table (one part per residual code, or
// the only one); empty past the last of the O channels.
__device__ __forceinline__ int4 table_entry(const EpilogueParams& ep, int64_t O, int part, int64_t o) {
  const int levels = ep.threshold_levels;
  return o < O ? threshold_entry(ep.thresholds + part * (levels + 2) * O, O, o, levels) : empty_threshold_entry();
}

// The level of convolution value y. T_1 <= T_2 <= T_3, so the count of thresholds passed takes
// two compares: T_2, then T_3 or T_1 (three compares and their sum cost about twice the
// instructions in the finishes, where this runs once per output).
__device__ __forceinline__ uint32_t entry_level(int32_t y, int4 t) {
  const bool upper = y >= t.y;
  const bool next = y >= (upper ? t.z : t.x);
  const uint32_t shift = (upper ? 4u : 0u) + (next ? 2u : 0u);
  return (static_cast<uint32_t>(t.w) >> shift) & 3u;
}

// Levels to plane words. levels0 / levels1 hold in byte b the level of channel 8 b + 2 quad
// + 0 / + 1 of one output pixel; the 4 lanes of a quad (lanes 4 g .. 4 g + 3) together hold
// the word's 32 channels. Returns plane 0 and 1 words of the 32 channels on all 4 lanes,
// channels at and past `channels` cleared; the pixel's row-sum part is
// plane_coefficient(0) * popc(w0) + plane_coefficient(1) * popc(w1) (common/quant.h).
struct LevelCodes {
  // A level's code bits, 4 bytes at a time: (base + level) & mask. Levels and the base's bytes
  // are below 4, so the bytes' sums carry into no other byte: one 32-bit add.
  uint32_t base, mask;
  __device__ explicit LevelCodes(const OutputQuant& q)
      : base((q.encoding == APNN_ENCODING_BINARY ? 0u : static_cast<uint32_t>(q.lo) & ((1u << q.bits) - 1u)) *
             0x01010101u),
        mask(((1u << q.bits) - 1u) * 0x01010101u) {}
};

__device__ __forceinline__ void level_plane_words(uint32_t levels0, uint32_t levels1, const LevelCodes& codes,
                                                  int quad, int channels, uint32_t& w0, uint32_t& w1) {
  const uint32_t bits0 = (levels0 + codes.base) & codes.mask;
  const uint32_t bits1 = (levels1 + codes.base) & codes.mask;
  // Plane p's bit of channel 8 b + 2 quad + e sits at bit 8 b + 2 quad + e of the word.
  w0 = ((bits0 & 0x01010101u) | ((bits1 & 0x01010101u) << 1)) << (2 * quad);
  w1 = (((bits0 >> 1) & 0x01010101u) | (((bits1 >> 1) & 0x01010101u) << 1)) << (2 * quad);
#pragma unroll
  for (int offset = 1; offset <= 2; offset *= 2) {
    w0 |= __shfl_xor_sync(0xffffffffu, w0, offset);
    w1 |= __shfl_xor_sync(0xffffffffu, w1, offset);
  }
  const uint32_t valid = channels >= 32 ? ~0u : channels > 0 ? (1u << channels) - 1u : 0u;
  w0 &= valid;
  w1 &= valid;
}

}  // namespace apnn
