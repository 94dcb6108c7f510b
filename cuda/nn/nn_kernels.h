// CUDA launchers of the network helpers (nn_types.h).
#pragma once

#include <cuda_runtime.h>

#include "nn/nn_types.h"

namespace apnn {

void pack_input_cuda(const InputPackCall& call, cudaStream_t stream);
void max_pool_cuda(const PoolCall& call, cudaStream_t stream);
// `hopper`: the device has compute capability 9.0 (the sm_90a kernel of first_layer_taps.h).
void first_layer_cuda(const FirstLayerCall& call, int multiprocessors, bool hopper, cudaStream_t stream);

}  // namespace apnn
