// CUDA runtime error checking for the CUDA backend: failures become apnn::Error.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/status.h"

namespace apnn {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const apnn_status_t status =
      err == cudaErrorMemoryAllocation ? APNN_STATUS_OUT_OF_MEMORY : APNN_STATUS_CUDA_ERROR;
  throw Error(status, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// Checks that the last kernel launch was accepted.
inline void cuda_check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// Opts kernel kKernel into `bytes` of dynamic shared memory (above 48 KB a kernel must), once per
// kernel: the template argument is the kernel itself, so every kernel gets its own flag.
template <auto kKernel>
void allow_dynamic_shared_memory(int bytes) {
  static const bool done =
      (cuda_check(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
                  "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)"),
       true);
  (void)done;
}

}  // namespace apnn

#define APNN_CUDA_CHECK(call) ::apnn::cuda_check((call), #call)
