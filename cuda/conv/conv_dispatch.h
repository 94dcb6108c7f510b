// Plans and launches the CUDA convolution (implicit GEMM + epilogue) for one call.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/backend.h"

namespace apnn {

// Per-context state of the CUDA convolution: the pinned choices and an int32 workspace for
// the results of split-K or unfused calls (grown outside graph capture, by the first call).
class ConvRunner {
 public:
  ConvRunner() = default;
  ConvRunner(const ConvRunner&) = delete;
  ConvRunner& operator=(const ConvRunner&) = delete;
  ~ConvRunner();

  void run(const ConvCall& call, int multiprocessors, cudaStream_t stream);
  std::string kernel_name(const ConvCall& call, int multiprocessors) const;
  void set_override(const ConvOverride& choice) { override_ = choice; }

 private:
  int32_t* workspace(size_t bytes);

  ConvOverride override_;
  int32_t* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace apnn
