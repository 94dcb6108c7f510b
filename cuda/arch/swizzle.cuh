// The XOR swizzle of 16-byte chunks in shared-memory tiles: ldmatrix (8 rows at once) and the
// wgmma descriptors (arch/wgmma.cuh, swizzled_descriptor) read such tiles without bank conflicts.
#pragma once

#include <cstdint>

namespace apnn {
namespace arch {

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile with CPR chunks per row.
template <int CPR>
__device__ __forceinline__ uint32_t swizzled(int row, int chunk) {
  constexpr int kRowsPerLine = 8 / CPR;  // rows sharing one 128-byte line of banks
  return static_cast<uint32_t>((row * CPR + (chunk ^ ((row / kRowsPerLine) % CPR))) * 16);
}

}  // namespace arch
}  // namespace apnn
