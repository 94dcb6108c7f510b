// Reading caller-supplied code arrays of any accepted element type on the host.
#pragma once

#include <cstdint>

#include "apnn/apnn.h"
#include "common/status.h"

namespace apnn {

// Element `index` of an int8 / uint8 / int32 code array as int32.
inline int32_t load_code(const void* codes, apnn_dtype_t dtype, int64_t index) {
  switch (dtype) {
    case APNN_DTYPE_INT8: return static_cast<const int8_t*>(codes)[index];
    case APNN_DTYPE_UINT8: return static_cast<const uint8_t*>(codes)[index];
    case APNN_DTYPE_INT32: return static_cast<const int32_t*>(codes)[index];
    default: throw Error(APNN_STATUS_INVALID_ARGUMENT, "codes must be int8, uint8 or int32");
  }
}

}  // namespace apnn
