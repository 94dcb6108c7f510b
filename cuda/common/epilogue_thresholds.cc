// Host construction of the threshold tables (epilogue_thresholds.h). Built with
// -ffp-contract=off, like every host user of common/epilogue.h.
#include "common/epilogue_thresholds.h"

#include <limits>

namespace apnn {

int threshold_levels(const OutputQuant& q) {
  return q.encoding == APNN_ENCODING_BINARY ? 1 : (1 << q.bits) - 1;
}

bool thresholds_apply(const EpilogueParams& e, const OutputQuant& q, bool residual, int64_t y_bound) {
  return !residual && e.pool != APNN_POOL_AVG && q.bits >= 1 && threshold_levels(q) <= kMaxThresholdLevels &&
         y_bound < std::numeric_limits<int32_t>::max();
}

std::vector<int32_t> build_threshold_table(const float* scale, const float* bias, int64_t channels,
                                           const EpilogueParams& e, const OutputQuant& q) {
  const int levels = threshold_levels(q);
  std::vector<int32_t> table(static_cast<size_t>((levels + 2) * channels));
  // The search range: every y the convolution may produce (thresholds_apply), with INT32_MAX
  // left over to mean "never reached".
  const int64_t y_lo = std::numeric_limits<int32_t>::min() + 1, y_hi = std::numeric_limits<int32_t>::max() - 1;
  const ResidualParams none;
  for (int64_t o = 0; o < channels; ++o) {
    auto level = [&](int64_t y) {
      const int32_t code = requantize(
          q, e.out_scale, epilogue_affine<false>(e, none, static_cast<int32_t>(y), 0, o, scale[o], bias[o]));
      return q.encoding == APNN_ENCODING_BINARY ? (code + 1) / 2 : code - q.lo;
    };
    const int base = level(y_lo), top = level(y_hi);
    const int direction = top > base ? 1 : top < base ? -1 : 0;
    table[o] = base;
    table[channels + o] = direction;
    for (int k = 1; k <= levels; ++k) {
      int32_t threshold = std::numeric_limits<int32_t>::max();
      if (direction * (top - base) >= k) {
        // Smallest y with the level k steps from base; the predicate is monotone in y.
        int64_t a = y_lo, b = y_hi;
        while (a < b) {
          const int64_t mid = a + (b - a) / 2;
          if (direction * (level(mid) - base) >= k) {
            b = mid;
          } else {
            a = mid + 1;
          }
        }
        threshold = static_cast<int32_t>(a);
      }
      table[(k + 1) * channels + o] = threshold;
    }
  }
  return table;
}

}  // namespace apnn
