// The host reference of convolution and the fused epilogue (apnn.h).
#pragma once

#include "common/backend.h"

namespace apnn {

// Runs `call` on host memory with up to `threads` threads.
void host_conv2d(const ConvCall& call, int threads);

}  // namespace apnn
