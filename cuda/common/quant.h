// The arithmetic of quantized codes (docs/arithmetic.md): value ranges, bit-plane
// coefficients and the offsets that the rank-1 corrections use. Shared by host and device.
#pragma once

#include <cstdint>
#include <string>

#include "apnn/apnn.h"

#if defined(__CUDACC__)
#define APNN_HD __host__ __device__ __forceinline__
#else
#define APNN_HD inline
#endif

namespace apnn {

constexpr int kMaxBits = 8;
constexpr int64_t kRowAlign = APNN_ROW_ALIGN;
constexpr int64_t kKAlignBits = APNN_K_ALIGN_BITS;

APNN_HD int64_t round_up(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Smallest and largest code of (bits, encoding).
APNN_HD int32_t code_min(int bits, apnn_encoding_t enc) {
  return enc == APNN_ENCODING_UNSIGNED ? 0 : enc == APNN_ENCODING_SIGNED ? -(1 << (bits - 1)) : -1;
}
APNN_HD int32_t code_max(int bits, apnn_encoding_t enc) {
  return enc == APNN_ENCODING_UNSIGNED ? (1 << bits) - 1 : enc == APNN_ENCODING_SIGNED ? (1 << (bits - 1)) - 1 : 1;
}
APNN_HD bool code_valid(int32_t code, int bits, apnn_encoding_t enc) {
  if (enc == APNN_ENCODING_BINARY) return code == -1 || code == 1;
  return code >= code_min(bits, enc) && code <= code_max(bits, enc);
}

// The bits stored in the planes for a code: two's complement truncated to `bits`, and for
// binary the bit (value + 1) / 2.
APNN_HD uint32_t code_bits(int32_t code, int bits, apnn_encoding_t enc) {
  if (enc == APNN_ENCODING_BINARY) return code > 0 ? 1u : 0u;
  return static_cast<uint32_t>(code) & ((1u << bits) - 1u);
}

// value = sum_i plane_coefficient(i) * bit_i + value_offset.
APNN_HD int32_t plane_coefficient(int plane, int bits, apnn_encoding_t enc) {
  if (enc == APNN_ENCODING_BINARY) return 2;
  if (enc == APNN_ENCODING_SIGNED && plane == bits - 1) return -(1 << plane);
  return 1 << plane;
}
APNN_HD int32_t value_offset(apnn_encoding_t enc) { return enc == APNN_ENCODING_BINARY ? -1 : 0; }

// The plane part of a code's value: sum_i c_i * bit_i = value - value_offset.
APNN_HD int32_t plane_part(int32_t code, apnn_encoding_t enc) { return code - value_offset(enc); }

// The real value is plane_part + real_offset, real_offset = value_offset - zero_point.
APNN_HD int64_t real_offset(const apnn_quant_t& q) {
  return static_cast<int64_t>(value_offset(q.encoding)) - q.zero_point;
}

const char* encoding_name(apnn_encoding_t enc);

// Validates (bits, encoding, zero point); throws Error with a clear message otherwise.
void validate_quant(const apnn_quant_t* quant, const char* what);

// Largest |value - zero_point| over the code range.
int64_t max_abs_real(const apnn_quant_t& q);

}  // namespace apnn
