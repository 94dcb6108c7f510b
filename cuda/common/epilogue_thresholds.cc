// Host construction of the threshold tables (epilogue_thresholds.h). Built with
// -ffp-contract=off, like every host user of common/epilogue.h.
#include "common/epilogue_thresholds.h"

#include <limits>
#include <string>

#include "common/status.h"

namespace apnn {

void fill_threshold_table(const float* scale, const float* bias, int64_t channels, const EpilogueParams& e,
                          const OutputQuant& q, bool with_residual, int32_t residual_value, int32_t* table);

int threshold_levels(const OutputQuant& q) {
  return q.encoding == APNN_ENCODING_BINARY ? 1 : (1 << q.bits) - 1;
}

bool thresholds_apply(const EpilogueParams& e, const OutputQuant& q, int residual_bits, int64_t y_bound) {
  return residual_bits >= 0 && (1 << residual_bits) <= kMaxResidualCodes && e.pool != APNN_POOL_AVG && q.bits >= 1 && threshold_levels(q) <= kMaxThresholdLevels &&
         y_bound < std::numeric_limits<int32_t>::max();
}

std::vector<int32_t> build_threshold_table(const float* scale, const float* bias, int64_t channels,
                                           const EpilogueParams& e, const OutputQuant& q,
                                           const apnn_quant_t* residual) {
  const int levels = threshold_levels(q);
  const int codes = residual ? 1 << residual->bits : 1;
  std::vector<int32_t> table(static_cast<size_t>(codes * (levels + 2) * channels));
  for (int c = 0; c < codes; ++c) {
    // The residual's real value for plane bits c, the same for every channel and pixel.
    int32_t value = 0;
    if (residual) {
      value = static_cast<int32_t>(real_offset(*residual));
      for (int i = 0; i < residual->bits; ++i)
        if ((c >> i) & 1) value += plane_coefficient(i, residual->bits, residual->encoding);
    }
    fill_threshold_table(scale, bias, channels, e, q, residual != nullptr, value,
                         table.data() + static_cast<size_t>(c) * (levels + 2) * channels);
  }
  return table;
}

// One table (no residual, or a residual of real value residual_value everywhere) into `table`.
void fill_threshold_table(const float* scale, const float* bias, int64_t channels, const EpilogueParams& e,
                          const OutputQuant& q, bool with_residual, int32_t residual_value, int32_t* table) {
  const int levels = threshold_levels(q);
  // The search range: every y the convolution may produce (thresholds_apply), with INT32_MAX
  // left over to mean "never reached".
  const int64_t y_lo = std::numeric_limits<int32_t>::min() + 1, y_hi = std::numeric_limits<int32_t>::max() - 1;
  // The residual as an int32 tensor of one pixel whose every channel holds residual_value.
  const std::vector<int32_t> residual_row(static_cast<size_t>(with_residual ? channels : 0), residual_value);
  ResidualParams r;
  r.int32_values = with_residual ? residual_row.data() : nullptr;
  r.channels = channels;
  for (int64_t o = 0; o < channels; ++o) {
    auto level = [&](int64_t y) {
      const float a = with_residual ? epilogue_affine<true>(e, r, static_cast<int32_t>(y), 0, o, scale[o], bias[o])
                                    : epilogue_affine<false>(e, r, static_cast<int32_t>(y), 0, o, scale[o], bias[o]);
      const int32_t code = requantize(q, e.out_scale, a);
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
}

std::vector<int32_t> import_threshold_table(const int32_t* given, const uint8_t* descending, int64_t channels,
                                            const OutputQuant& q, const apnn_quant_t* residual) {
  const int levels = threshold_levels(q);
  const int codes = residual ? 1 << residual->bits : 1;
  const size_t table_size = static_cast<size_t>((levels + 2) * channels);
  std::vector<int32_t> table(static_cast<size_t>(codes) * table_size);
  for (int r = 0; r < codes; ++r) {
    // The caller orders tables by the residual's level; the kernels by its plane bits.
    int32_t slot = 0;
    if (residual) {
      const OutputQuant rq = output_quant(*residual);
      slot = static_cast<int32_t>(code_bits(code_of_level(rq, r), rq.bits, rq.encoding));
    }
    int32_t* out = table.data() + static_cast<size_t>(slot) * table_size;
    for (int64_t o = 0; o < channels; ++o) {
      const int32_t* row = given + (static_cast<int64_t>(r) * channels + o) * levels;
      const bool down = descending != nullptr && descending[o] != 0;
      out[o] = down ? levels : 0;
      out[channels + o] = down ? -1 : 1;
      for (int k = 0; k < levels; ++k) {
        if (k > 0 && row[k - 1] > row[k])  // the message reads row[k - 1]: only build it here
          throw Error(APNN_STATUS_INVALID_ARGUMENT,
                      "thresholds: table " + std::to_string(r) + ", channel " + std::to_string(o) +
                          " decreases at entry " + std::to_string(k) + " (" + std::to_string(row[k - 1]) + " > " +
                          std::to_string(row[k]) + "); each row must be non-decreasing");
        out[(k + 2) * channels + o] = row[k];
      }
    }
  }
  return table;
}

}  // namespace apnn
