// Chooses and launches a bit-plane GEMM kernel for a problem.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/backend.h"

namespace apnn {

struct GemmPlan {
  std::string name;  // e.g. "w1a2_b256x128_k512_s4_split1"
  int config = 0;
  int split_k = 1;
  bool generic = false;
};

constexpr int kNumGemmConfigs = 3;

GemmPlan plan_gemm(const PackedMatrix& x, const PackedMatrix& w, int multiprocessors, const GemmOverride& pin);
void launch_gemm(const GemmPlan& plan, const PackedMatrix& x, const PackedMatrix& w, int32_t* y,
                 cudaStream_t stream);

}  // namespace apnn
