// The C API: argument checks, handle bookkeeping, and the translation of apnn::Error
// (and any other exception) into a status code plus the thread-local message.
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "apnn/apnn.h"
#include "common/api_util.h"
#include "common/backend.h"
#include "common/epilogue.h"
#include "common/objects.h"
#include "common/options.h"
#include "common/quant.h"
#include "common/status.h"

using apnn::require_arg;
using apnn::guarded;
using apnn::check_context;
using apnn::lock_context;
using apnn::check_packed;
using apnn::check_buffer;
using apnn::Scratch;

namespace {

size_t dtype_size(apnn_dtype_t dtype) {
  switch (dtype) {
    case APNN_DTYPE_INT8:
    case APNN_DTYPE_UINT8: return 1;
    case APNN_DTYPE_INT32:
    case APNN_DTYPE_FLOAT32: return 4;
  }
  return 0;
}

void check_code_dtype(apnn_dtype_t dtype) {
  require_arg(dtype == APNN_DTYPE_INT8 || dtype == APNN_DTYPE_UINT8 || dtype == APNN_DTYPE_INT32,
              "codes must be int8, uint8 or int32, got dtype " + std::to_string(static_cast<int>(dtype)));
}

void check_shape(int64_t rows, int64_t cols) {
  require_arg(rows >= 1 && cols >= 1, "shape must be at least 1 x 1, got " + std::to_string(rows) + " x " +
                                          std::to_string(cols));
  require_arg(rows <= (int64_t{1} << 31) && cols <= (int64_t{1} << 31), "shape too large");
}

// Allocates the storage of a packed matrix of the given shape; the caller owns it.
apnn_packed* new_packed(apnn_context_t ctx, int64_t rows, int64_t cols, const apnn_quant_t& quant) {
  auto* p = new apnn_packed;
  p->ctx = ctx;
  auto& m = p->matrix;
  m.rows = rows;
  m.cols = cols;
  m.rows_padded = apnn::round_up(rows, apnn::kRowAlign);
  m.words = apnn::round_up(cols, apnn::kKAlignBits) / 32;
  m.quant = quant;
  try {
    m.planes_mem = static_cast<uint32_t*>(ctx->backend->allocate(m.total_words() * sizeof(uint32_t)));
    m.row_sums_mem = static_cast<int32_t*>(ctx->backend->allocate(m.rows_padded * sizeof(int32_t)));
  } catch (...) {
    ctx->backend->release(m.planes_mem);
    delete p;
    throw;
  }
  return p;
}

// Packs codes already in backend memory; on success hands the new object to *out.
void pack_into(apnn_context_t ctx, const void* codes_mem, apnn_dtype_t dtype, int64_t rows, int64_t cols,
               const apnn_quant_t& quant, apnn_packed_t* out) {
  apnn_packed* p = new_packed(ctx, rows, cols, quant);
  try {
    ctx->backend->pack(codes_mem, dtype, p->matrix);
  } catch (...) {
    apnn::free_packed(p);
    throw;
  }
  ctx->live_objects++;
  *out = p;
}

void check_gemm(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w) {
  check_context(ctx);
  check_packed(ctx, x, "x");
  check_packed(ctx, w, "w");
  require_arg(x->matrix.cols == w->matrix.cols, "x has K = " + std::to_string(x->matrix.cols) +
                                                    " columns but w has K = " + std::to_string(w->matrix.cols));
  const double bound = static_cast<double>(x->matrix.cols) * apnn::max_abs_real(x->matrix.quant) *
                       apnn::max_abs_real(w->matrix.quant);
  apnn::require(bound <= std::numeric_limits<int32_t>::max(), APNN_STATUS_UNSUPPORTED,
                "K * max|x| * max|w| = " + std::to_string(static_cast<int64_t>(bound)) +
                    " could overflow the int32 output; split K");
}

}  // namespace

extern "C" {

const char* apnn_last_error(void) { return apnn::last_error(); }

const char* apnn_status_string(apnn_status_t status) {
  switch (status) {
    case APNN_STATUS_SUCCESS: return "APNN_STATUS_SUCCESS";
    case APNN_STATUS_INVALID_ARGUMENT: return "APNN_STATUS_INVALID_ARGUMENT";
    case APNN_STATUS_UNSUPPORTED: return "APNN_STATUS_UNSUPPORTED";
    case APNN_STATUS_NO_DEVICE: return "APNN_STATUS_NO_DEVICE";
    case APNN_STATUS_OUT_OF_MEMORY: return "APNN_STATUS_OUT_OF_MEMORY";
    case APNN_STATUS_CUDA_ERROR: return "APNN_STATUS_CUDA_ERROR";
    case APNN_STATUS_INTERNAL_ERROR: return "APNN_STATUS_INTERNAL_ERROR";
  }
  return "APNN_STATUS_UNKNOWN";
}

const char* apnn_version(void) { return "0.1.0"; }

apnn_status_t apnn_cuda_device_count(int32_t* count) {
  return guarded(__func__, [&] {
    require_arg(count != nullptr, "count is NULL");
    *count = apnn::cuda_device_count();
  });
}

apnn_status_t apnn_context_create(apnn_backend_t backend, apnn_context_t* ctx) {
  return guarded(__func__, [&] {
    require_arg(ctx != nullptr, "ctx is NULL");
    auto c = std::make_unique<apnn_context>();
    switch (backend) {
      case APNN_BACKEND_AUTO:
        if (apnn::cuda_device_count() > 0) {
          c->backend = apnn::make_cuda_backend();
          c->kind = APNN_BACKEND_CUDA;
        } else {
          c->backend = apnn::make_host_backend();
          c->kind = APNN_BACKEND_HOST;
        }
        break;
      case APNN_BACKEND_CUDA:
        c->backend = apnn::make_cuda_backend();
        c->kind = APNN_BACKEND_CUDA;
        break;
      case APNN_BACKEND_HOST:
        c->backend = apnn::make_host_backend();
        c->kind = APNN_BACKEND_HOST;
        break;
      default:
        require_arg(false, "unknown backend " + std::to_string(static_cast<int>(backend)));
    }
    c->options = apnn::environment_options();
    c->backend->set_options(c->options);
    *ctx = c.release();
  });
}

apnn_status_t apnn_options_init(apnn_options_t* options) {
  return guarded(__func__, [&] {
    require_arg(options != nullptr, "options is NULL");
    *options = apnn::default_options();
  });
}

apnn_status_t apnn_context_set_options(apnn_context_t ctx, const apnn_options_t* options) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(options != nullptr, "options is NULL");
    apnn::validate_options(*options);
    ctx->options = *options;
    ctx->backend->set_options(*options);
  });
}

apnn_status_t apnn_context_get_options(apnn_context_t ctx, apnn_options_t* options) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(options != nullptr, "options is NULL");
    *options = ctx->options;
  });
}

apnn_status_t apnn_context_destroy(apnn_context_t ctx) {
  return guarded(__func__, [&] {
    {
      const auto held = lock_context(ctx);  // waits for a call on it in another thread
      require_arg(ctx->live_objects == 0, "context still owns " + std::to_string(ctx->live_objects) +
                                              " packed matrices or buffers; destroy them first");
    }
    delete ctx;
  });
}

apnn_status_t apnn_context_info(apnn_context_t ctx, apnn_context_info_t* info) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(info != nullptr, "info is NULL");
    std::memset(info, 0, sizeof(*info));
    ctx->backend->info(info);
  });
}

apnn_status_t apnn_context_synchronize(apnn_context_t ctx) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    ctx->backend->synchronize();
  });
}

apnn_status_t apnn_buffer_create(apnn_context_t ctx, size_t bytes, apnn_buffer_t* buffer) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(buffer != nullptr, "buffer is NULL");
    require_arg(bytes > 0, "a buffer needs at least 1 byte");
    auto* b = new apnn_buffer;
    b->ctx = ctx;
    b->bytes = bytes;
    try {
      b->mem = ctx->backend->allocate(bytes);
    } catch (...) {
      delete b;
      throw;
    }
    ctx->live_objects++;
    *buffer = b;
  });
}

apnn_status_t apnn_buffer_destroy(apnn_buffer_t buffer) {
  return guarded(__func__, [&] {
    require_arg(buffer != nullptr, "buffer is NULL");
    const auto held = lock_context(buffer->ctx);
    buffer->ctx->backend->release(buffer->mem);
    buffer->ctx->live_objects--;
    delete buffer;
  });
}

apnn_status_t apnn_buffer_size(apnn_buffer_t buffer, size_t* bytes) {
  return guarded(__func__, [&] {
    require_arg(buffer != nullptr && bytes != nullptr, "buffer or bytes is NULL");
    const auto held = lock_context(buffer->ctx);
    *bytes = buffer->bytes;
  });
}

apnn_status_t apnn_buffer_write(apnn_buffer_t buffer, const void* host, size_t bytes) {
  return guarded(__func__, [&] {
    require_arg(buffer != nullptr && host != nullptr, "buffer or host pointer is NULL");
    const auto held = lock_context(buffer->ctx);
    require_arg(bytes <= buffer->bytes, "writing " + std::to_string(bytes) + " bytes into a buffer of " +
                                            std::to_string(buffer->bytes));
    buffer->ctx->backend->write(buffer->mem, host, bytes);
  });
}

apnn_status_t apnn_buffer_read(apnn_buffer_t buffer, void* host, size_t bytes) {
  return guarded(__func__, [&] {
    require_arg(buffer != nullptr && host != nullptr, "buffer or host pointer is NULL");
    const auto held = lock_context(buffer->ctx);
    require_arg(bytes <= buffer->bytes, "reading " + std::to_string(bytes) + " bytes from a buffer of " +
                                            std::to_string(buffer->bytes));
    buffer->ctx->backend->read(host, buffer->mem, bytes);
  });
}

apnn_status_t apnn_pack(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype, int64_t rows, int64_t cols,
                        const apnn_quant_t* quant, apnn_packed_t* packed) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(codes != nullptr, "codes is NULL");
    require_arg(packed != nullptr, "packed is NULL");
    check_code_dtype(dtype);
    check_shape(rows, cols);
    apnn::validate_quant(quant, "quant");
    const size_t bytes = static_cast<size_t>(rows) * cols * dtype_size(dtype);
    Scratch staging(ctx->backend.get(), bytes);
    ctx->backend->write(staging.mem, codes, bytes);
    pack_into(ctx, staging.mem, dtype, rows, cols, *quant, packed);
  });
}

apnn_status_t apnn_pack_buffer(apnn_context_t ctx, apnn_buffer_t codes, apnn_dtype_t dtype, int64_t rows,
                               int64_t cols, const apnn_quant_t* quant, apnn_packed_t* packed) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    check_buffer(ctx, codes, "codes");
    require_arg(packed != nullptr, "packed is NULL");
    check_code_dtype(dtype);
    check_shape(rows, cols);
    apnn::validate_quant(quant, "quant");
    const size_t bytes = static_cast<size_t>(rows) * cols * dtype_size(dtype);
    require_arg(codes->bytes >= bytes, "codes buffer holds " + std::to_string(codes->bytes) + " bytes, " +
                                           std::to_string(bytes) + " needed");
    pack_into(ctx, codes->mem, dtype, rows, cols, *quant, packed);
  });
}

apnn_status_t apnn_quantize_pack(apnn_context_t ctx, const float* values, int64_t rows, int64_t cols, float scale,
                                 const apnn_quant_t* quant, apnn_packed_t* packed) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(values != nullptr, "values is NULL");
    require_arg(packed != nullptr, "packed is NULL");
    check_shape(rows, cols);
    apnn::validate_quant(quant, "quant");
    require_arg(scale > 0.0f && scale < std::numeric_limits<float>::infinity(),
                "scale must be a finite number > 0");
    const int64_t n = rows * cols;
    std::vector<int32_t> codes(static_cast<size_t>(n));
    // The library's one rounding rule (apnn.h, epilogue step 5): the float32 quotient, rounded half
    // to even, clamped, plus the zero point; the same as network inputs and float weights.
    const apnn::OutputQuant oq = apnn::output_quant(*quant);
    for (int64_t i = 0; i < n; ++i) {
      const float v = values[i];
      require_arg(v == v, "values[" + std::to_string(i) + "] is NaN");
      codes[i] = apnn::requantize(oq, scale, v);
    }
    const size_t bytes = static_cast<size_t>(n) * sizeof(int32_t);
    Scratch staging(ctx->backend.get(), bytes);
    ctx->backend->write(staging.mem, codes.data(), bytes);
    pack_into(ctx, staging.mem, APNN_DTYPE_INT32, rows, cols, *quant, packed);
  });
}

apnn_status_t apnn_packed_destroy(apnn_packed_t packed) {
  return guarded(__func__, [&] {
    require_arg(packed != nullptr, "packed is NULL");
    const auto held = lock_context(packed->ctx);
    packed->ctx->live_objects--;
    apnn::free_packed(packed);
  });
}

apnn_status_t apnn_packed_info(apnn_packed_t packed, int64_t* rows, int64_t* cols, apnn_quant_t* quant) {
  return guarded(__func__, [&] {
    require_arg(packed != nullptr, "packed is NULL");
    const auto held = lock_context(packed->ctx);
    if (rows) *rows = packed->matrix.rows;
    if (cols) *cols = packed->matrix.cols;
    if (quant) *quant = packed->matrix.quant;
  });
}

apnn_status_t apnn_packed_read_planes(apnn_packed_t packed, uint32_t* host, size_t words) {
  return guarded(__func__, [&] {
    require_arg(packed != nullptr && host != nullptr, "packed or host is NULL");
    const auto held = lock_context(packed->ctx);
    const size_t need = static_cast<size_t>(packed->matrix.total_words());
    require_arg(words >= need, "need room for " + std::to_string(need) + " words, got " + std::to_string(words));
    packed->ctx->backend->read(host, packed->matrix.planes_mem, need * sizeof(uint32_t));
  });
}

apnn_status_t apnn_gemm(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w, int32_t* y) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_gemm(ctx, x, w);
    require_arg(y != nullptr, "y is NULL");
    const size_t bytes = static_cast<size_t>(x->matrix.rows) * w->matrix.rows * sizeof(int32_t);
    Scratch out(ctx->backend.get(), bytes);
    ctx->backend->gemm(x->matrix, w->matrix, static_cast<int32_t*>(out.mem));
    ctx->backend->read(y, out.mem, bytes);
  });
}

apnn_status_t apnn_gemm_buffer(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w, apnn_buffer_t y) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_gemm(ctx, x, w);
    check_buffer(ctx, y, "y");
    const size_t bytes = static_cast<size_t>(x->matrix.rows) * w->matrix.rows * sizeof(int32_t);
    require_arg(y->bytes >= bytes, "y holds " + std::to_string(y->bytes) + " bytes, " + std::to_string(bytes) +
                                       " needed");
    ctx->backend->gemm(x->matrix, w->matrix, static_cast<int32_t*>(y->mem));
  });
}

apnn_status_t apnn_gemm_benchmark(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w, apnn_buffer_t y,
                                  int32_t warmup, int32_t iters, double* microseconds) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_gemm(ctx, x, w);
    check_buffer(ctx, y, "y");
    require_arg(microseconds != nullptr, "microseconds is NULL");
    require_arg(warmup >= 0 && iters >= 1, "need warmup >= 0 and iters >= 1");
    const size_t bytes = static_cast<size_t>(x->matrix.rows) * w->matrix.rows * sizeof(int32_t);
    require_arg(y->bytes >= bytes, "y holds " + std::to_string(y->bytes) + " bytes, " + std::to_string(bytes) +
                                       " needed");
    auto* out = static_cast<int32_t*>(y->mem);
    const auto& xm = x->matrix;
    const auto& wm = w->matrix;
    *microseconds = ctx->backend->benchmark([&] { ctx->backend->gemm(xm, wm, out); }, warmup, iters);
  });
}

apnn_status_t apnn_gemm_kernel_name(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w, char* name,
                                    size_t capacity) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_gemm(ctx, x, w);
    require_arg(name != nullptr && capacity > 0, "name is NULL or capacity is 0");
    const std::string s = ctx->backend->gemm_kernel_name(x->matrix, w->matrix);
    std::strncpy(name, s.c_str(), capacity - 1);
    name[capacity - 1] = '\0';
  });
}

apnn_status_t apnn_context_set_gemm_override(apnn_context_t ctx, int32_t config, int32_t split_k, int32_t flags) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(config >= -1 && config < apnn::kNumGemmConfigs,
                "config must be -1 (automatic) or 0.." + std::to_string(apnn::kNumGemmConfigs - 1) + ", got " +
                    std::to_string(config));
    require_arg(split_k >= 0 && split_k <= 64, "split_k must be 0 (automatic) or 1..64, got " +
                                                   std::to_string(split_k));
    apnn::GemmOverride choice;
    choice.config = config;
    choice.split_k = split_k;
    require_arg((flags & ~(APNN_GEMM_FORCE_GENERIC | APNN_GEMM_NO_CLUSTER)) == 0,
                "unknown flags " + std::to_string(flags));
    choice.generic = (flags & APNN_GEMM_FORCE_GENERIC) != 0;
    choice.no_cluster = (flags & APNN_GEMM_NO_CLUSTER) != 0;
    ctx->backend->set_gemm_override(choice);
  });
}

}  // extern "C"
