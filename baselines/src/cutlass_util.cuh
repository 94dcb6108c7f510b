// Shared glue for the CUTLASS instantiation files.
#pragma once

#include <cutlass/cutlass.h>

#include "internal.h"

namespace apnnb {

inline void cutlass_check(cutlass::Status status, const char* what) {
  if (status != cutlass::Status::kSuccess) {
    throw_cutlass(static_cast<int>(status), what, cutlass::cutlassGetStatusString(status));
  }
}

// Runs a cutlass::gemm::device::Gemm-style operator with TN operands and an int/float C.
template <typename Gemm, typename EA, typename EB, typename EC>
void run_tn_gemm(const char* name, int m, int n, int k, const void* a, const void* b, EC* c,
                 cudaStream_t stream) {
  using ElementA = typename Gemm::ElementA;
  using ElementB = typename Gemm::ElementB;
  typename Gemm::Arguments args({m, n, k},
                                {reinterpret_cast<ElementA*>(const_cast<void*>(a)), k},
                                {reinterpret_cast<ElementB*>(const_cast<void*>(b)), k},
                                {c, n}, {c, n}, {1, 0});
  Gemm gemm;
  cutlass_check(gemm.can_implement(args), name);
  cutlass_check(gemm.initialize(args, nullptr, stream), name);
  cutlass_check(gemm.run(stream), name);
  cuda_check(cudaGetLastError(), name);
}

}  // namespace apnnb
