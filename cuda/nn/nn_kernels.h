// CUDA launchers of the network helpers (nn_types.h).
#pragma once

#include <cuda_runtime.h>

#include "nn/nn_types.h"

namespace apnn {

void pack_input_cuda(const InputPackCall& call, cudaStream_t stream);
void max_pool_cuda(const PoolCall& call, cudaStream_t stream);
void first_layer_cuda(const FirstLayerCall& call, int multiprocessors, cudaStream_t stream);

}  // namespace apnn
