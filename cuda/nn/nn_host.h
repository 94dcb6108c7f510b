// Host loops of the network helpers (nn_types.h), run by the host backend.
#pragma once

#include "nn/nn_types.h"

namespace apnn {

void host_pack_input(const InputPackCall& call, int threads);
void host_max_pool(const PoolCall& call, int threads);

}  // namespace apnn
