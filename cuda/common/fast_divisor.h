// Division by a divisor fixed for a whole launch: a multiply-high, an add and a shift instead of
// the GPU's ~20-instruction integer division. Round-up reciprocal (Granlund & Montgomery,
// "Division by invariant integers using multiplication", 1994): for divisor d with
// 2^(s-1) < d <= 2^s, m = floor(2^32 (2^s - d) / d) + 1 and n / d = (umulhi(m, n) + n) >> s,
// exact for every dividend n < 2^31 (the sum stays below 2^32).
#pragma once

#include <cstdint>

namespace apnn {

struct FastDivisor {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivisor() = default;
  // d in 1 .. 2^31 - 1 (callers check their shapes).
  explicit FastDivisor(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    multiplier = static_cast<uint32_t>((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d) / d + 1);
  }

  // n / divisor for n < 2^31.
  __device__ __forceinline__ uint32_t quotient(uint32_t n) const { return (__umulhi(multiplier, n) + n) >> shift; }
};

}  // namespace apnn
