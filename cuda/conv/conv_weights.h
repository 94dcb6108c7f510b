// Packing O x KH x KW x C weight codes into the convolution layout (apnn.h), on the host:
// weights are packed once per model, so clarity wins over speed here.
#pragma once

#include <cstdint>
#include <vector>

#include "conv/conv_types.h"

namespace apnn {

// Fills `planes` (w.total_words()) and `tap_sat` (w.rows_padded * w.sat_stride()) from host
// codes; w's shape, quant and layout (tap_words, words) must be set. Throws Error(INVALID_ARGUMENT) naming the first
// code out of range.
void pack_conv_weights_host(const void* codes, apnn_dtype_t dtype, const ConvWeights& w,
                            std::vector<uint32_t>& planes, std::vector<int32_t>& tap_sat);

}  // namespace apnn
