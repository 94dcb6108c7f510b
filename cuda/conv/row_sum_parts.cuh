// Row sums of a packed output whose channels span several column tiles (blocks).
//
// Each block adds its part of a pixel's row sum to the pixel's 64-bit workspace word: bits 40..63
// count the parts that arrived, bits 0..39 sum (part + kRowSumPartBias). The block whose add is
// the last one writes the row sum, computed from the value its atomic returned, and zeroes the
// word for the next launch. Atomics on one word are ordered, so no fence, no arrival counter per
// row tile and no second pass over the tile are needed: one atomic round trip per pixel and block.
#pragma once

#include <cstdint>

namespace apnn {
namespace conv_detail {

// A block's part is a sum over at most 256 channels of plane parts of at most 255 in magnitude
// (8-bit codes), so part + bias is in [0, 2^18). Channels are at most 2^24 (apnn.h) in column
// tiles of at least 32, so at most 2^19 parts: their sum stays under 2^37 and their count under
// 2^24 (bits 40..63).
constexpr int64_t kRowSumPartBias = int64_t{1} << 17;
constexpr int kRowSumCountShift = 40;

// A block's part of a row sum. parts: how many blocks add to each pixel (the launch's column
// tiles); with one the part is the sum and is stored directly.
__device__ __forceinline__ void publish_row_sum(unsigned long long* workspace, int32_t* row_sums, int64_t row,
                                                int32_t part, int parts) {
  if (parts == 1) {
    row_sums[row] = part;
    return;
  }
  const unsigned long long term = static_cast<unsigned long long>(part + kRowSumPartBias);
  const unsigned long long old = atomicAdd(workspace + row, (1ull << kRowSumCountShift) + term);
  if (static_cast<int64_t>(old >> kRowSumCountShift) + 1 != parts) return;
  const int64_t biased = static_cast<int64_t>((old & ((1ull << kRowSumCountShift) - 1)) + term);
  row_sums[row] = static_cast<int32_t>(biased - static_cast<int64_t>(parts) * kRowSumPartBias);
  workspace[row] = 0;
}

}  // namespace conv_detail
}  // namespace apnn
