// CUDA launchers of the network helpers (nn_types.h).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "nn/nn_types.h"

namespace apnn {

void pack_input_cuda(const InputPackCall& call, cudaStream_t stream);
void max_pool_cuda(const PoolCall& call, cudaStream_t stream);
// `hopper`: the device has compute capability 9.0 (the sm_90a kernel of first_layer_taps.h).
// taps: apnn_options_t::first_layer_taps (AUTO, 0 never the Hopper kernel, 1 require it).
void first_layer_cuda(const FirstLayerCall& call, int multiprocessors, bool hopper, int taps, cudaStream_t stream);
// The kernel first_layer_cuda runs for the call's layer with an aligned 8-bit image.
std::string first_layer_kernel_name(const FirstLayerCall& call, bool hopper, int taps);

}  // namespace apnn
