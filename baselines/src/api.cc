// The C API of libapnn_baselines: argument checks, device buffers, timing, and errors
// turned into status codes plus a thread-local message.
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "apnn_baselines/baselines.h"
#include "internal.h"
#include "net.h"
#include "runtime.h"

struct apnnb_net {
  std::unique_ptr<apnnb::Net> impl;
};

namespace apnnb {
namespace {

thread_local std::string g_last_error;

template <typename F>
apnnb_status_t guard(F&& f) {
  try {
    f();
    return APNNB_STATUS_SUCCESS;
  } catch (const Error& e) {
    g_last_error = e.what();
    return e.status();
  } catch (const std::bad_alloc&) {
    g_last_error = "host memory allocation failed";
    return APNNB_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return APNNB_STATUS_INTERNAL_ERROR;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return APNNB_STATUS_INTERNAL_ERROR;
  }
}

const char* kind_name(apnnb_kind_t kind) {
  switch (kind) {
    case APNNB_INT1_XOR: return "INT1 XOR";
    case APNNB_INT1_AND: return "INT1 AND";
    case APNNB_INT4: return "INT4";
  }
  return "?";
}

void check_kind(apnnb_kind_t kind) {
  require_arg(kind == APNNB_INT1_XOR || kind == APNNB_INT1_AND || kind == APNNB_INT4,
              "kind must be APNNB_INT1_XOR, APNNB_INT1_AND or APNNB_INT4, got " + std::to_string(static_cast<int>(kind)));
}

int bits_of(apnnb_kind_t kind) { return kind == APNNB_INT4 ? 4 : 1; }

// Bytes of `rows` packed rows of `cols` codes.
size_t packed_bytes(apnnb_kind_t kind, int64_t rows, int64_t cols) {
  return static_cast<size_t>(rows) * static_cast<size_t>(cols) * bits_of(kind) / 8;
}

void check_timing(int32_t warmup, int32_t iters, const double* microseconds) {
  require_arg(warmup >= 0 && iters >= 0, "warmup and iters must be >= 0");
  require_arg(iters == 0 || microseconds != nullptr, "microseconds must not be NULL when iters > 0");
}

constexpr int64_t kMaxDim = (1ll << 31) - 1;

}  // namespace

void throw_cutlass(int status, const char* what, const char* status_string) {
  throw Error(status >= 1 && status <= 5 /* misaligned, data type, layout, problem, not supported */
                  ? APNNB_STATUS_UNSUPPORTED
                  : APNNB_STATUS_CUDA_ERROR,
              std::string(what) + ": CUTLASS status " + status_string);
}

}  // namespace apnnb

using namespace apnnb;

extern "C" {

const char* apnnb_last_error(void) { return g_last_error.c_str(); }

const char* apnnb_status_string(apnnb_status_t status) {
  switch (status) {
    case APNNB_STATUS_SUCCESS: return "APNNB_STATUS_SUCCESS";
    case APNNB_STATUS_INVALID_ARGUMENT: return "APNNB_STATUS_INVALID_ARGUMENT";
    case APNNB_STATUS_UNSUPPORTED: return "APNNB_STATUS_UNSUPPORTED";
    case APNNB_STATUS_NO_DEVICE: return "APNNB_STATUS_NO_DEVICE";
    case APNNB_STATUS_OUT_OF_MEMORY: return "APNNB_STATUS_OUT_OF_MEMORY";
    case APNNB_STATUS_CUDA_ERROR: return "APNNB_STATUS_CUDA_ERROR";
    case APNNB_STATUS_INTERNAL_ERROR: return "APNNB_STATUS_INTERNAL_ERROR";
  }
  return "APNNB_STATUS_UNKNOWN";
}

const char* apnnb_version(void) { return "0.1.0"; }

apnnb_status_t apnnb_cuda_device_count(int32_t* count) {
  return guard([&] {
    require_arg(count != nullptr, "count must not be NULL");
    *count = cuda_device_count();
  });
}

apnnb_status_t apnnb_device_name(char* name, size_t capacity) {
  return guard([&] {
    require_arg(name != nullptr && capacity >= 1, "name must not be NULL and capacity >= 1");
    ensure_device();
    cudaDeviceProp props;
    APNNB_CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
    std::strncpy(name, props.name, capacity - 1);
    name[capacity - 1] = '\0';
  });
}

apnnb_status_t apnnb_device_compute_capability(int32_t* major, int32_t* minor) {
  return guard([&] {
    require_arg(major != nullptr && minor != nullptr, "major and minor must not be NULL");
    const int sm = device_sm();
    *major = sm / 10;
    *minor = sm % 10;
  });
}

apnnb_status_t apnnb_gemm(apnnb_kind_t kind, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                          int32_t* c, int32_t warmup, int32_t iters, double* microseconds) {
  return guard([&] {
    check_kind(kind);
    require_arg(m >= 1 && n >= 1 && k >= 1 && m <= kMaxDim && n <= kMaxDim && k <= kMaxDim,
                "M, N and K must be in 1 .. 2^31-1");
    require_arg(a != nullptr && b != nullptr, "a and b must not be NULL");
    check_timing(warmup, iters, microseconds);
    const int k_align = kind == APNNB_INT4 ? 32 : 128;
    require(k % k_align == 0, APNNB_STATUS_UNSUPPORTED,
            std::string(kind_name(kind)) + " GEMM needs K % " + std::to_string(k_align) + " == 0, got K = " +
                std::to_string(k) + " (pad K with zero codes)");
    require(n % 4 == 0, APNNB_STATUS_UNSUPPORTED,
            "the GEMM needs N % 4 == 0, got N = " + std::to_string(n) + " (pad B with zero rows)");
    ensure_device();
    if (kind == APNNB_INT1_XOR) require_xor_popc("INT1 XOR GEMM");
    DeviceBuffer da(packed_bytes(kind, m, k)), db(packed_bytes(kind, n, k)), dc(static_cast<size_t>(m) * n * 4);
    da.upload(a, da.bytes());
    db.upload(b, db.bytes());
    Stream stream;
    auto op = [&] {
      switch (kind) {
        case APNNB_INT1_XOR: gemm_b1_xor(int(m), int(n), int(k), da.get(), db.get(), dc.as<int32_t>(), stream.get()); break;
        case APNNB_INT1_AND: gemm_b1_and(int(m), int(n), int(k), da.get(), db.get(), dc.as<int32_t>(), stream.get()); break;
        case APNNB_INT4: gemm_s4(int(m), int(n), int(k), da.get(), db.get(), dc.as<int32_t>(), stream.get()); break;
      }
    };
    double us = 0.0;
    if (iters > 0) us = benchmark(op, stream.get(), warmup, iters);
    APNNB_CUDA_CHECK(cudaMemsetAsync(dc.get(), 0, dc.bytes(), stream.get()));
    op();
    stream.synchronize();
    if (c) dc.download(c, dc.bytes());
    if (iters > 0) *microseconds = us;
  });
}

apnnb_status_t apnnb_conv(apnnb_kind_t kind, int64_t batch, int64_t height, int64_t width, int64_t channels,
                          int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad, const void* x,
                          const void* w, int32_t* y, int32_t warmup, int32_t iters, double* microseconds) {
  return guard([&] {
    check_kind(kind);
    require_arg(batch >= 1 && height >= 1 && width >= 1 && channels >= 1 && out_channels >= 1 && kernel >= 1 &&
                    stride >= 1 && pad >= 0,
                "batch, height, width, channels, out_channels, kernel, stride must be >= 1 and pad >= 0");
    require_arg(height + 2 * pad >= kernel && width + 2 * pad >= kernel, "the kernel does not fit the padded input");
    require_arg(x != nullptr && w != nullptr, "x and w must not be NULL");
    check_timing(warmup, iters, microseconds);
    const int64_t p = (height + 2 * pad - kernel) / stride + 1, q = (width + 2 * pad - kernel) / stride + 1;
    require_arg(batch * height * width * channels <= kMaxDim && batch * p * q * out_channels <= kMaxDim &&
                    out_channels * kernel * kernel * channels <= kMaxDim,
                "tensor too large for 32-bit CUTLASS coordinates");
    const int c_align = kind == APNNB_INT4 ? 32 : 128;
    require(channels % c_align == 0, APNNB_STATUS_UNSUPPORTED,
            std::string(kind_name(kind)) + " conv needs channels % " + std::to_string(c_align) + " == 0, got " +
                std::to_string(channels));
    require(out_channels % 4 == 0, APNNB_STATUS_UNSUPPORTED,
            "the conv needs out_channels % 4 == 0, got " + std::to_string(out_channels));
    ensure_device();
    if (kind == APNNB_INT1_XOR) require_xor_popc("INT1 XOR conv");
    ConvShape s{int(batch), int(height), int(width), int(channels), int(out_channels), int(kernel), int(stride),
                int(pad), int(p), int(q)};
    DeviceBuffer dx(packed_bytes(kind, batch * height * width, channels));
    DeviceBuffer dw(packed_bytes(kind, out_channels * kernel * kernel, channels));
    DeviceBuffer dy(static_cast<size_t>(batch * p * q * out_channels) * 4);
    dx.upload(x, dx.bytes());
    dw.upload(w, dw.bytes());
    Stream stream;
    auto op = [&] {
      switch (kind) {
        case APNNB_INT1_XOR: conv_b1_xor(s, dx.get(), dw.get(), dy.as<int32_t>(), stream.get()); break;
        case APNNB_INT1_AND: conv_b1_and(s, dx.get(), dw.get(), dy.as<int32_t>(), stream.get()); break;
        case APNNB_INT4: conv_s4(s, dx.get(), dw.get(), dy.as<int32_t>(), stream.get()); break;
      }
    };
    double us = 0.0;
    if (iters > 0) us = benchmark(op, stream.get(), warmup, iters);
    APNNB_CUDA_CHECK(cudaMemsetAsync(dy.get(), 0, dy.bytes(), stream.get()));
    op();
    stream.synchronize();
    if (y) dy.download(y, dy.bytes());
    if (iters > 0) *microseconds = us;
  });
}

apnnb_status_t apnnb_net_create(apnnb_precision_t precision, int32_t batch, int32_t height, int32_t width,
                                int32_t channels, const apnnb_layer_t* layers, int32_t count, uint64_t seed,
                                apnnb_net_t* net) {
  return guard([&] {
    require_arg(net != nullptr, "net must not be NULL");
    auto handle = std::make_unique<apnnb_net>();
    handle->impl = std::make_unique<Net>(precision, batch, height, width, channels, layers, count, seed);
    *net = handle.release();
  });
}

apnnb_status_t apnnb_net_destroy(apnnb_net_t net) {
  return guard([&] {
    require_arg(net != nullptr, "net must not be NULL");
    delete net;
  });
}

apnnb_status_t apnnb_net_layer_shape(apnnb_net_t net, int32_t layer, int32_t* height, int32_t* width,
                                     int32_t* channels) {
  return guard([&] {
    require_arg(net != nullptr && net->impl, "net must not be NULL");
    net->impl->layer_shape(layer, height, width, channels);
  });
}

apnnb_status_t apnnb_net_set_params(apnnb_net_t net, int32_t layer, const float* weights, int64_t weight_count,
                                    const float* bias, int64_t bias_count) {
  return guard([&] {
    require_arg(net != nullptr && net->impl, "net must not be NULL");
    net->impl->set_params(layer, weights, weight_count, bias, bias_count);
  });
}

apnnb_status_t apnnb_net_run(apnnb_net_t net, const float* input, int64_t input_count, float* output,
                             int64_t output_count, int32_t warmup, int32_t iters, double* microseconds) {
  return guard([&] {
    require_arg(net != nullptr && net->impl, "net must not be NULL");
    net->impl->run(input, input_count, output, output_count, warmup, iters, microseconds);
  });
}

}  // extern "C"
