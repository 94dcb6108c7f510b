// Instances and launch of the wgmma bit-plane GEMM (bitplane_gemm_wgmma_kernel.cuh).
#include "gemm/gemm_wgmma.h"

#include "common/cuda_check.h"
#include "common/status.h"
#include "gemm/bitplane_gemm_wgmma_kernel.cuh"

namespace apnn {
namespace {

constexpr int kMaxDynamicSmem = 227 * 1024;  // sm_90's opt-in limit per block

// A ring of 4 stages where it fits in shared memory (all but w1a4), else 3.
template <int BN, int P, int Q>
constexpr int stages_that_fit() {
  return WgmmaGemm<BN, 4, P, Q>::kSmemBytes <= kMaxDynamicSmem ? 4 : 3;
}

template <int BN, int P, int Q>
void launch(const GemmParams& params, dim3 grid, cudaStream_t stream) {
  constexpr int kStages = stages_that_fit<BN, P, Q>();
  using Cfg = WgmmaGemm<BN, kStages, P, Q>;
  static_assert(Cfg::kSmemBytes <= kMaxDynamicSmem, "the ring must fit in shared memory");
  constexpr auto fn = bitplane_gemm_wgmma_kernel<BN, kStages, P, Q>;
  allow_dynamic_shared_memory<fn>(Cfg::kSmemBytes);
  fn<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  cuda_check_launch("bitplane_gemm_wgmma_kernel");
}

}  // namespace

bool has_wgmma_gemm(int p, int q, int tile_n) {
  const bool narrow = (q == 1 && p >= 1 && p <= 4) || (p == 2 && q == 2);
  if (tile_n == 64) return narrow;
  if (tile_n == 128) return q == 1 && (p == 1 || p == 2);
  return false;
}

void launch_wgmma_gemm(const GemmParams& params, dim3 grid, cudaStream_t stream) {
  const int p = params.p, q = params.q;
  require(has_wgmma_gemm(p, q, params.tn), APNN_STATUS_INTERNAL_ERROR, "no wgmma GEMM kernel for these planes");
  if (params.tn == 128) {
    if (p == 1) return launch<128, 1, 1>(params, grid, stream);
    return launch<128, 2, 1>(params, grid, stream);
  }
  if (q == 2) return launch<64, 2, 2>(params, grid, stream);
  if (p == 1) return launch<64, 1, 1>(params, grid, stream);
  if (p == 2) return launch<64, 2, 1>(params, grid, stream);
  if (p == 3) return launch<64, 3, 1>(params, grid, stream);
  launch<64, 4, 1>(params, grid, stream);
}

}  // namespace apnn
