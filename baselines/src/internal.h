// Internal interfaces of libapnn_baselines: errors, CUDA checks and the kernel launchers
// (each CUTLASS instantiation lives in its own .cu file so they compile in parallel).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "apnn_baselines/baselines.h"

namespace apnnb {

class Error : public std::runtime_error {
 public:
  Error(apnnb_status_t status, const std::string& message) : std::runtime_error(message), status_(status) {}
  apnnb_status_t status() const { return status_; }

 private:
  apnnb_status_t status_;
};

inline void require(bool ok, apnnb_status_t status, const std::string& message) {
  if (!ok) throw Error(status, message);
}
inline void require_arg(bool ok, const std::string& message) { require(ok, APNNB_STATUS_INVALID_ARGUMENT, message); }

inline void cuda_check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const apnnb_status_t status =
      err == cudaErrorMemoryAllocation ? APNNB_STATUS_OUT_OF_MEMORY : APNNB_STATUS_CUDA_ERROR;
  throw Error(status, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}
#define APNNB_CUDA_CHECK(call) ::apnnb::cuda_check((call), #call)

// Problem of an implicit-GEMM convolution (NHWC, square kernel, symmetric padding).
struct ConvShape {
  int n, h, w, c, o, r, stride, pad, p, q;
};

// ---- CUTLASS launchers: C(m x n) = A(m x k, row-major) * B(n x k, row-major)^T. ----------
// Each throws Error on a failed CUTLASS status or launch. Workspace-free (no split-K).
void gemm_b1_xor(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream);
void gemm_b1_and(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream);
void gemm_s4(int m, int n, int k, const void* a, const void* b, int32_t* c, cudaStream_t stream);
void gemm_f32(int m, int n, int k, const float* a, const float* b, float* c, cudaStream_t stream);
void gemm_f16(int m, int n, int k, const __half* a, const __half* b, float* c, cudaStream_t stream);
void gemm_s8(int m, int n, int k, const int8_t* a, const int8_t* b, int32_t* c, cudaStream_t stream);

void conv_b1_xor(const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream);
void conv_b1_and(const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream);
void conv_s4(const ConvShape& s, const void* x, const void* w, int32_t* y, cudaStream_t stream);

// Turns a CUTLASS status into an Error.
void throw_cutlass(int status, const char* what, const char* status_string);

}  // namespace apnnb
