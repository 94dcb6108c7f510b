#include "conv/conv_weights.h"

#include <string>

#include "common/codes.h"
#include "common/quant.h"
#include "common/status.h"

namespace apnn {

void pack_conv_weights_host(const void* codes, apnn_dtype_t dtype, const ConvWeights& w,
                            std::vector<uint32_t>& planes, std::vector<int32_t>& tap_sat) {
  const apnn_quant_t& q = w.quant;
  const int64_t taps = w.kh * w.kw;
  planes.assign(static_cast<size_t>(w.total_words()), 0u);
  tap_sat.assign(static_cast<size_t>(w.rows_padded * w.sat_stride()), 0);
  std::vector<int64_t> tap_sum(static_cast<size_t>(taps));
  for (int64_t o = 0; o < w.out_channels; ++o) {
    for (int64_t t = 0; t < taps; ++t) {
      int64_t sum = 0;
      for (int64_t c = 0; c < w.channels; ++c) {
        const int64_t index = (o * taps + t) * w.channels + c;
        const int32_t code = load_code(codes, dtype, index);
        if (!code_valid(code, q.bits, q.encoding)) {
          throw Error(APNN_STATUS_INVALID_ARGUMENT,
                      "code " + std::to_string(code) + " at (" + std::to_string(o) + ", " + std::to_string(t / w.kw) +
                          ", " + std::to_string(t % w.kw) + ", " + std::to_string(c) + ") is outside " +
                          std::to_string(code_min(q.bits, q.encoding)) + ".." +
                          std::to_string(code_max(q.bits, q.encoding)) + " for " + std::to_string(q.bits) +
                          "-bit " + encoding_name(q.encoding) + " codes");
        }
        const uint32_t bits = code_bits(code, q.bits, q.encoding);
        // Bit position along the row: each tap padded to channel_words, or taps back to back.
        const int64_t k = w.tap_words ? t * w.channels + c : t * w.channel_words * 32 + c;
        for (int j = 0; j < q.bits; ++j) {
          if ((bits >> j) & 1u) planes[static_cast<size_t>((j * w.rows_padded + o) * w.words + k / 32)] |= 1u << (k % 32);
        }
        sum += plane_part(code, q.encoding);
      }
      tap_sum[static_cast<size_t>(t)] = sum;
    }
    // Summed-area table: rectangles of valid taps become 4 lookups in the kernels.
    int32_t* sat = tap_sat.data() + o * w.sat_stride();
    for (int64_t i = 1; i <= w.kh; ++i)
      for (int64_t j = 1; j <= w.kw; ++j)
        sat[i * (w.kw + 1) + j] = static_cast<int32_t>(tap_sum[static_cast<size_t>((i - 1) * w.kw + (j - 1))] +
                                                       sat[(i - 1) * (w.kw + 1) + j] + sat[i * (w.kw + 1) + j - 1] -
                                                       sat[(i - 1) * (w.kw + 1) + j - 1]);
  }
}

}  // namespace apnn
