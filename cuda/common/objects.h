// The opaque handles of the C API.
#pragma once

#include <memory>

#include "common/backend.h"

struct apnn_context {
  std::unique_ptr<apnn::Backend> backend;
  apnn_backend_t kind = APNN_BACKEND_HOST;
  int live_objects = 0;  // packed matrices and buffers not yet destroyed
};

struct apnn_packed {
  apnn_context* ctx = nullptr;
  apnn::PackedMatrix matrix;
};

struct apnn_buffer {
  apnn_context* ctx = nullptr;
  void* mem = nullptr;
  size_t bytes = 0;
};
