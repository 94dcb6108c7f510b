// The opaque handles of the C API.
#pragma once

#include <memory>
#include <mutex>

#include "common/backend.h"

struct apnn_context {
  std::unique_ptr<apnn::Backend> backend;
  apnn_backend_t kind = APNN_BACKEND_HOST;
  apnn_options_t options;  // the kernel choices, also of networks created on this context
  int live_objects = 0;    // packed matrices and buffers not yet destroyed
  // Held by every call on the context or on what it made (api_util.h, lock_context): such calls
  // run one at a time, whichever threads make them (apnn.h, "Threads").
  std::recursive_mutex mutex;
};

struct apnn_packed {
  apnn_context* ctx = nullptr;
  apnn::PackedMatrix matrix;
};

namespace apnn {
// Frees a packed matrix's backend memory and the handle (the C API's destroy and error paths).
inline void free_packed(apnn_packed* p) {
  p->ctx->backend->release(p->matrix.planes_mem);
  p->ctx->backend->release(p->matrix.row_sums_mem);
  delete p;
}
}  // namespace apnn

struct apnn_buffer {
  apnn_context* ctx = nullptr;
  void* mem = nullptr;
  size_t bytes = 0;
};
