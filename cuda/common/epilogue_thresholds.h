// The threshold form of an epilogue with a packed output (steps 1, 3 and 5 of apnn.h's fused
// epilogue, no residual): the output code as a step function of the int32 convolution result.
//
// Every step is monotone in y: int32 -> float rounding, a multiplication by scale[o] (non-
// decreasing for scale >= 0, non-increasing below), adding bias[o], ReLU / clip, dividing by
// out_scale > 0, rounding and clamping. So, for channel o, the output's level (code - lowest
// code; for BINARY (code + 1) / 2) is
//     level(y) = base[o] + direction[o] * #{k : y >= T_k[o]}
// with T_1 <= T_2 <= ... the smallest y at which the level has moved k steps away from its value
// at the bottom of the int32 range. The table is built on the host by binary search over the
// very same float arithmetic (common/epilogue.h), so it reproduces the epilogue exactly; a
// kernel then compares instead of running float math and an IEEE division per output. A max
// pool commutes with it: the pooled code is the largest level in the window. A residual from a
// packed tensor of at most 2 bits takes one of at most 4 real values r; for each, step 2 (adding
// fl(r * residual_scale)) is monotone too, so the table becomes one table per residual code.
#pragma once

#include <cstdint>
#include <vector>

#include "common/epilogue.h"

namespace apnn {

// Levels (thresholds per channel) of the largest output the table form is used for: 2-bit
// codes, the activations of w1a2 / w2a2 networks. Wider outputs keep the float path: the
// convolution kernels hold the block's table in shared memory, and a 4-bit table would cost
// the large tiles a resident block per SM.
constexpr int kMaxThresholdLevels = 3;
constexpr int kThresholdRows = kMaxThresholdLevels + 2;
constexpr int kMaxResidualCodes = 4;  // residuals of up to 2 bits

// Number of thresholds per channel for output codes `q`: 2^bits - 1, one for BINARY.
int threshold_levels(const OutputQuant& q);

// Whether the table form applies: an integer output of at most 2 bits, no residual or a packed
// one of at most 2 bits (residual_bits: 0 none, else its bits; -1 an int32 residual), no average
// pooling, and every int32 result the convolution can produce (|y| <= y_bound) strictly inside
// the int32 range, so that INT32_MAX can stand for "never".
bool thresholds_apply(const EpilogueParams& e, const OutputQuant& q, int residual_bits, int64_t y_bound);

// The table for `channels` channels, row-major (threshold_levels(q) + 2) x channels:
// row 0 base level, row 1 direction (+1, -1, or 0 for a constant channel), rows 2.. T_1, T_2, ...
// scale and bias are the host copies of what the epilogue's device pointers hold. With a packed
// `residual`, 2^bits such tables follow each other, table c for the residual whose plane bits
// are the bits of c.
std::vector<int32_t> build_threshold_table(const float* scale, const float* bias, int64_t channels,
                                           const EpilogueParams& e, const OutputQuant& q,
                                           const apnn_quant_t* residual = nullptr);

// The internal table of a caller's thresholds (apnn.h, "Threshold epilogues"): `given` is
// R x channels x levels, non-decreasing along levels, `descending` NULL or channels flags; R = 1
// without a residual, else 2^residual->bits tables ordered by the residual's level, which are
// reordered here into the plane-bit order above. Throws INVALID_ARGUMENT for a decreasing row.
std::vector<int32_t> import_threshold_table(const int32_t* given, const uint8_t* descending, int64_t channels,
                                            const OutputQuant& q, const apnn_quant_t* residual);

// Whether the fused convolution kernels can hold a table: they keep kThresholdRows rows per
// channel and kMaxResidualCodes tables in shared memory. Wider tables run the separate epilogue.
inline bool threshold_table_fits_kernels(int levels, int residual_codes) {
  return levels <= kMaxThresholdLevels && residual_codes <= kMaxResidualCodes;
}

// The level of result y in channel o of one table ((levels + 2) x channels, layout above).
APNN_HD int32_t threshold_level(const int32_t* table, int64_t channels, int levels, int64_t o, int32_t y) {
  int32_t count = 0;
  for (int k = 0; k < levels; ++k) count += y >= table[(k + 2) * channels + o] ? 1 : 0;
  return table[o] + table[channels + o] * count;
}

// The table of a stacked residual table set that serves pixel m, channel o: the residual code's
// plane bits (the plane-bit order above).
APNN_HD int32_t residual_table_index(const ResidualParams& r, int64_t m, int64_t o) {
  int32_t c = 0;
  for (int i = 0; i < r.bits; ++i) c |= static_cast<int32_t>((r.planes[(i * r.rows_padded + m) * r.words + o / 32] >> (o % 32)) & 1u) << i;
  return c;
}

// The output code of a level (inverse of the level definition above).
APNN_HD int32_t code_of_level(const OutputQuant& q, int32_t level) {
  return q.encoding == APNN_ENCODING_BINARY ? 2 * level - 1 : q.lo + level;
}

}  // namespace apnn
