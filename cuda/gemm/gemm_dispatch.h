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
  bool cluster_split = false;  // split-K reduced through a thread-block cluster (sm_90)
};

// What the planner needs to know of the GPU.
struct GemmTarget {
  int multiprocessors = 1;
  bool clusters = false;  // thread-block clusters (compute capability 9.0+)
  bool wgmma = false;     // the sm_90a kernels run (compute capability exactly 9.0)
};

GemmPlan plan_gemm(const PackedMatrix& x, const PackedMatrix& w, const GemmTarget& target, const GemmOverride& pin);
// Split-K scratch: int32 entries and tile counters, zero between calls (the kernel re-zeroes
// what it used), owned by the caller.
struct GemmWorkspaceSize {
  size_t entries = 0;
  size_t counters = 0;
};
struct GemmWorkspace {
  int32_t* workspace = nullptr;
  unsigned* tile_counters = nullptr;
};
GemmWorkspaceSize gemm_workspace_size(const GemmPlan& plan, const PackedMatrix& x, const PackedMatrix& w);

void launch_gemm(const GemmPlan& plan, const PackedMatrix& x, const PackedMatrix& w, int32_t* y,
                 const GemmWorkspace& workspace, cudaStream_t stream);

}  // namespace apnn
