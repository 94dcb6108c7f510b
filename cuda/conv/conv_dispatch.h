// Plans and launches the CUDA convolution (implicit GEMM + epilogue) for one call.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/backend.h"
#include "gemm/gemm_dispatch.h"

namespace apnn {

struct ConvPlan;
struct ConvKernelParams;

// Per-context state of the CUDA convolution: the pinned choices and an int32 workspace for
// the results of split-K or unfused calls (grown outside graph capture, by the first call).
class ConvRunner {
 public:
  ConvRunner();
  ConvRunner(const ConvRunner&) = delete;
  ConvRunner& operator=(const ConvRunner&) = delete;
  ~ConvRunner();

  // `target`: the context's GPU (the backend reads it once, as for the GEMM planner).
  void run(const ConvCall& call, const GemmTarget& target, cudaStream_t stream);
  std::string kernel_name(const ConvCall& call, const GemmTarget& target) const;
  // Whether the call runs on the halo kernel, the one kernel that also reads and writes rows
  // without 256-bit padding (its tensors' words as given in the call).
  bool takes_unpadded_rows(const ConvCall& call, const GemmTarget& target) const;
  void set_override(const ConvOverride& choice) { override_ = choice; }
  // The context's kernel choices (conv_tiles, conv_halo, conv_register_finish, derived_thresholds,
  // dependent_launch of apnn_options_t).
  void set_options(const apnn_options_t& options);
  // The tiled kernels (thread-block clusters: sm_90) run this context's convolutions unless
  // pinned to the fallback; only they take weights with packed taps.
  bool tiled(const GemmTarget& target) const { return forced_config_ != -2 && target.clusters; }

 private:
  ConvPlan plan(const ConvCall& call, const GemmTarget& target) const;
  // The epilogue, residual and packed-output fields of the kernels' parameters.
  void set_outputs(const ConvCall& call, ConvKernelParams& prm) const;
  // A grouped convolution (conv_grouped.h), then the separate epilogue where it has one.
  void run_grouped(const ConvCall& call, cudaStream_t stream);
  // Whether the call's packed output comes from its threshold table (a caller's table always).
  bool uses_table(const ConvCall& call) const;
  // The pinned choices, with fusion off where only the separate epilogue kernel can apply the
  // call's table: a caller's table wider than the fused kernels hold, or on the fallback kernel.
  ConvOverride effective_override(const ConvCall& call, const GemmTarget& target) const;
  int32_t* workspace(size_t bytes);
  unsigned long long* row_workspace(size_t entries, cudaStream_t stream);

  ConvOverride override_;
  int32_t* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  unsigned long long* row_ws_ = nullptr;  // zeroed row-sum parts of fused packed outputs
  size_t row_ws_entries_ = 0;
  int forced_config_ = -1;        // conv_tiles: -1 automatic, -2 the fallback kernel
  bool thresholds_ = true;        // derived_thresholds 0: always the float epilogue
  bool register_finish_ = true;   // conv_register_finish 0: always the shared-memory finish
  bool dependent_launch_ = true;  // dependent_launch 0: tiled launches wait for the previous kernel
  int halo_ = -1;                 // conv_halo: -1 the planner decides, 0 never, 1 wherever it serves
};

}  // namespace apnn
