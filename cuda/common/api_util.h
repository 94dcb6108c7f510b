// Helpers shared by the C API translation units (cuda/api*.cc): the exception-to-status
// boundary and the checks of handles.
#pragma once

#include <mutex>
#include <new>
#include <string>

#include "apnn/apnn.h"
#include "common/objects.h"
#include "common/status.h"

namespace apnn {

// Runs `body`; turns apnn::Error (and any other exception) into a status code plus the
// thread-local message "function: what".
template <typename F>
inline apnn_status_t guarded(const char* function, F&& body) {
  try {
    body();
    return APNN_STATUS_SUCCESS;
  } catch (const apnn::Error& e) {
    set_last_error(std::string(function) + ": " + e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(function) + ": out of host memory");
    return APNN_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string(function) + ": internal error: " + e.what());
    return APNN_STATUS_INTERNAL_ERROR;
  } catch (...) {
    set_last_error(std::string(function) + ": internal error");
    return APNN_STATUS_INTERNAL_ERROR;
  }
}

inline void check_context(apnn_context_t ctx) { require_arg(ctx != nullptr, "context is NULL"); }

// Checks the context and takes its lock for the rest of the call (recursive: a call may reach
// another entry point's helpers).
[[nodiscard]] inline std::unique_lock<std::recursive_mutex> lock_context(apnn_context_t ctx) {
  check_context(ctx);
  return std::unique_lock<std::recursive_mutex>(ctx->mutex);
}

inline void check_packed(apnn_context_t ctx, apnn_packed_t p, const char* name) {
  require_arg(p != nullptr, std::string(name) + " is NULL");
  require_arg(p->ctx == ctx, std::string(name) + " belongs to another context");
}

inline void check_buffer(apnn_context_t ctx, apnn_buffer_t b, const char* name) {
  require_arg(b != nullptr, std::string(name) + " is NULL");
  require_arg(b->ctx == ctx, std::string(name) + " belongs to another context");
}

// RAII scratch memory of the backend.
struct Scratch {
  apnn::Backend* backend;
  void* mem;
  Scratch(apnn::Backend* b, size_t bytes) : backend(b), mem(b->allocate(bytes)) {}
  ~Scratch() { backend->release(mem); }
};

}  // namespace apnn
