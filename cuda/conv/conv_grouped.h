// Grouped and depthwise convolution (apnn.h, "Grouped convolution") on the CUDA backend: a direct
// kernel, one thread per output element, that multiplies the codes' real values read bit by bit
// from the packed planes. A depthwise output has KH*KW products, far too few to feed a tensor
// core tile, so the kernel is bound by reading its input windows, which neighbouring threads
// (neighbouring channels of one pixel) share through the L1 cache.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "conv/conv_types.h"

namespace apnn {

// Writes the int32 results, N*OH*OW x O (NHWC), of the grouped convolution `call` into y.
void launch_grouped_conv(const ConvCall& call, int32_t* y, cudaStream_t stream);

}  // namespace apnn
