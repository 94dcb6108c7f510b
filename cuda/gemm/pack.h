// Packing integer codes into bit-planes on the GPU (layout: apnn.h).
#pragma once

#include <cuda_runtime.h>

#include "common/backend.h"

namespace apnn {

// Packs rows x cols codes (device memory) into `out` on `stream`. Codes outside the range
// of out.quant raise Error(INVALID_ARGUMENT) naming the first one (this synchronizes).
void pack_codes_cuda(const void* codes, apnn_dtype_t dtype, PackedMatrix& out, cudaStream_t stream);

}  // namespace apnn
