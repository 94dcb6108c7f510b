// The first convolution from the 8-bit image on Hopper's warpgroup INT8 MMA (sm_90a,
// nn/first_layer_taps.cu). The dispatcher (first_layer_cuda) runs it on devices of compute
// capability 9.0 for calls with tap weights (FirstLayerCall::tap_weights) and 8-bit images at
// 4-byte aligned addresses.
#pragma once

#include <cuda_runtime.h>

#include "nn/nn_types.h"

namespace apnn {

void first_layer_taps_cuda(const FirstLayerCall& call, bool signed_x, int multiprocessors, cudaStream_t stream);

}  // namespace apnn
