// Tile configurations, the compile-time fast paths, and the choice among them.
#include "gemm/gemm_dispatch.h"

#include <algorithm>
#include <climits>
#include <string>

#include "common/cuda_check.h"
#include "common/quant.h"
#include "gemm/bitplane_gemm_folded_kernel.cuh"
#include "gemm/bitplane_gemm_kernel.cuh"
#include "gemm/gemm_wgmma.h"

namespace apnn {
namespace {

// Tile configurations: bit-rows x bit-cols per block, warp tile, K bits per stage, stages.
struct TileConfig {
  const char* name;
  int bm, bn, kt;     // bit-rows x bit-columns per block (folded: output rows x columns)
  int blocks_per_sm;  // expected residency, for the wave count
  double efficiency;  // relative speed per block tile at full occupancy
  bool folded = false;  // bitplane_gemm_folded_kernel: plane pairs folded in registers
  bool wgmma = false;   // bitplane_gemm_wgmma_kernel (sm_90a): bm x bn output rows x columns
};
constexpr TileConfig kConfigs[] = {
    {"b256x128_k1024", 256, 128, 1024, 1, 0.87},
    {"b128x128_k512", 128, 128, 512, 2, 1.00},
    {"b64x64_k256", 64, 64, 256, 4, 0.50},
    {"b128x128_k1024", 128, 128, 1024, 2, 1.02},
    {"b64x64_k1024", 64, 64, 1024, 4, 0.52},
    {"folded128x256_k512", 128, 256, 512, 1, 1.40, true},
    {"folded128x128_k1024", 128, 128, 1024, 2, 1.52, true},
    // Latency tiles for small outputs (M=64-type): 2 warps and few outputs per thread, so the
    // combine-and-store tail, which dominates there, is short and spread over more blocks.
    {"b32x32_k256", 32, 32, 256, 8, 0.25},
    {"b32x32_k1024", 32, 32, 1024, 8, 0.26},
    // Hopper's warpgroup binary MMA (gemm_wgmma.h), one accumulator set per plane pair.
    {"wgmma128x128_k1024", kWgmmaTileRows, 128, 1024, 1, 2.3, false, true},
    {"wgmma128x64_k1024", kWgmmaTileRows, 64, 1024, 1, 2.0, false, true},
};
constexpr int kWgmmaWide = 9, kWgmmaNarrow = 10;  // the two wgmma rows above
constexpr int kNumConfigs = sizeof(kConfigs) / sizeof(kConfigs[0]);
static_assert(kNumConfigs == kNumGemmConfigs, "keep kNumGemmConfigs (common/backend.h) in step");

// The kernel of each configuration (must match kConfigs row for row).
template <int Config, int P, int Q>
struct Kernel;
#define APNN_GEMM_CONFIG(ID, BM, BN, WM, WN, KT, STAGES)                        \
  template <int P, int Q>                                                        \
  struct Kernel<ID, P, Q> {                                                      \
    using Cfg = BitplaneGemm<BM, BN, WM, WN, KT, STAGES, P, Q>;                  \
    static constexpr auto fn = bitplane_gemm_kernel<BM, BN, WM, WN, KT, STAGES, P, Q>; \
  };
APNN_GEMM_CONFIG(0, 256, 128, 64, 64, 1024, 3)
APNN_GEMM_CONFIG(1, 128, 128, 64, 64, 512, 4)
APNN_GEMM_CONFIG(2, 64, 64, 32, 32, 256, 4)
APNN_GEMM_CONFIG(3, 128, 128, 64, 64, 1024, 3)
APNN_GEMM_CONFIG(4, 64, 64, 32, 32, 1024, 2)
APNN_GEMM_CONFIG(7, 32, 32, 16, 32, 256, 2)
APNN_GEMM_CONFIG(8, 32, 32, 16, 32, 1024, 2)
#undef APNN_GEMM_CONFIG

template <int Config, int P, int Q>
struct FoldedKernel;
#define APNN_FOLDED_CONFIG(ID, BM, BN, WM, WN, KT, STAGES)                                  \
  template <int P, int Q>                                                                    \
  struct FoldedKernel<ID, P, Q> {                                                            \
    using Cfg = FoldedGemm<BM, BN, WM, WN, KT, STAGES, P, Q>;                                \
    static constexpr auto fn = bitplane_gemm_folded_kernel<BM, BN, WM, WN, KT, STAGES, P, Q>; \
  };
APNN_FOLDED_CONFIG(5, 128, 256, 64, 64, 512, 3)
APNN_FOLDED_CONFIG(6, 128, 128, 64, 64, 1024, 2)
#undef APNN_FOLDED_CONFIG

// Plane counts the folded kernel is built for: w1a2, w2a2, w1a4 (more planes spill registers).
bool is_folded_path(int p, int q) { return (p == 2 && q == 1) || (p == 2 && q == 2) || (p == 4 && q == 1); }

template <typename K>
void launch_kernel(const GemmParams& params, dim3 grid, cudaStream_t stream) {
  allow_dynamic_shared_memory<K::fn>(K::Cfg::kSmemBytes);
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(K::Cfg::kThreads);
  config.dynamicSmemBytes = K::Cfg::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute cluster;
  if (params.cluster_split) {
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = grid.z;
    config.attrs = &cluster;
    config.numAttrs = 1;
  }
  APNN_CUDA_CHECK(cudaLaunchKernelEx(&config, K::fn, params));
}

template <int Config, int P, int Q>
void launch(const GemmParams& params, dim3 grid, cudaStream_t stream) {
  launch_kernel<Kernel<Config, P, Q>>(params, grid, stream);
}

template <int Config>
void launch_folded(int p, int q, const GemmParams& params, dim3 grid, cudaStream_t stream) {
  if (p == 2 && q == 1) return launch_kernel<FoldedKernel<Config, 2, 1>>(params, grid, stream);
  if (p == 4 && q == 1) return launch_kernel<FoldedKernel<Config, 4, 1>>(params, grid, stream);
  if (p == 2 && q == 2) return launch_kernel<FoldedKernel<Config, 2, 2>>(params, grid, stream);
  throw Error(APNN_STATUS_INTERNAL_ERROR, "no folded kernel for these plane counts");
}

template <int Config>
void launch_config(int p, int q, bool generic, const GemmParams& params, dim3 grid, cudaStream_t stream) {
  if (generic) return launch<Config, 0, 0>(params, grid, stream);
  // Compile-time specialized fast paths (x planes P, w planes Q), then the generic kernel.
#define APNN_FAST_PATH(P, Q) \
  if (p == P && q == Q) return launch<Config, P, Q>(params, grid, stream);
  APNN_FAST_PATH(1, 1)  // w1a1
  APNN_FAST_PATH(2, 1)  // w1a2
  APNN_FAST_PATH(3, 1)  // w1a3
  APNN_FAST_PATH(4, 1)  // w1a4
  APNN_FAST_PATH(2, 2)  // w2a2
  APNN_FAST_PATH(4, 2)  // w2a4
  APNN_FAST_PATH(4, 4)  // w4a4
  APNN_FAST_PATH(8, 1)  // w1a8
  APNN_FAST_PATH(8, 2)  // w2a8
#undef APNN_FAST_PATH
  launch<Config, 0, 0>(params, grid, stream);
}

bool is_fast_path(int p, int q) {
  static const int pairs[][2] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {2, 2}, {4, 2}, {4, 4}, {8, 1}, {8, 2}};
  for (const auto& pq : pairs)
    if (pq[0] == p && pq[1] == q) return true;
  return false;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether a configuration's tile counts output rows x columns (all planes of each) rather
// than bit-rows x bit-columns.
bool whole_outputs(const TileConfig& cfg) { return cfg.folded || cfg.wgmma; }

// Output rows (or columns) per block of a configuration for an operand of `planes` planes.
int64_t output_rows(const TileConfig& cfg, int planes, bool rows = true) {
  return whole_outputs(cfg) ? (rows ? cfg.bm : cfg.bn) : (rows ? cfg.bm : cfg.bn) / planes;
}

// Whether configuration `c` can run p x q planes on this target.
bool config_serves(int c, int p, int q, const GemmTarget& target, const GemmOverride& pin) {
  const TileConfig& cfg = kConfigs[c];
  if (cfg.folded) return is_folded_path(p, q) && !pin.generic;
  if (cfg.wgmma) return target.wgmma && !pin.generic && has_wgmma_gemm(p, q, cfg.bn);
  return true;
}

}  // namespace

GemmPlan plan_gemm(const PackedMatrix& x, const PackedMatrix& w, const GemmTarget& target, const GemmOverride& pin) {
  const int multiprocessors = target.multiprocessors;
  const bool clusters = target.clusters && !pin.no_cluster;
  const int p = x.quant.bits, q = w.quant.bits;
  const int64_t chunks = x.words / 4;
  // Pick the configuration with the least estimated time: waves x per-block work / efficiency.
  int best = 0;
  double best_cost = 1e300;
  int64_t best_blocks = 0;
  // A pinned configuration that cannot serve these plane counts (a folded one, or a wgmma one
  // off sm_90) falls back to the automatic choice.
  const bool pinned = pin.config >= 0 && config_serves(pin.config, p, q, target, pin);
  for (int c = 0; c < kNumConfigs; ++c) {
    if (pinned && c != pin.config) continue;
    const TileConfig& cfg = kConfigs[c];
    if (!config_serves(c, p, q, target, pin) || (cfg.wgmma && !pinned)) continue;  // wgmma: chosen below
    const int64_t tm = output_rows(cfg, p), tn = output_rows(cfg, q, false);
    if (tm < 1 || tn < 1) continue;
    const int64_t blocks = ceil_div(x.rows, tm) * ceil_div(w.rows, tn);
    // Time ~ the work each SM does: its share of blocks times the work of one block.
    const int64_t blocks_per_sm = ceil_div(blocks, multiprocessors);
    const double bits_per_block = static_cast<double>(tm) * p * tn * q;
    const double cost = static_cast<double>(blocks_per_sm) * bits_per_block / cfg.efficiency;
    if (cost < best_cost) {
      best_cost = cost;
      best = c;
      best_blocks = blocks;
    }
  }
  // Throughput-bound shapes (at least two waves of the chosen tiles): the tile that measured
  // fastest on the H100 at 4096..8192 cubed for these plane counts (bench_gemm
  // --sweep_configs, 2026-11-23); the cost model above is only a guess between them.
  if (!pinned && best_blocks >= 2 * static_cast<int64_t>(multiprocessors) * kConfigs[best].blocks_per_sm) {
    if (p == 2 && q == 1) best = 6;  // w1a2: folded 128x128, 1024-bit stages: 423-427 us at 8192^3 (512-bit: 454)
    if (p == 2 && q == 2) best = 0;  // w2a2: 256x128 / 1024-bit stages, 967 us (folded: 1196 us)
    if (p == 4 && q == 1) best = 1;  // w1a4: 128x128 / 512-bit stages, 944 us (folded: 1205 us)
    if (p == 4 && q == 2) best = 1;  // w2a4: 128x128 / 512-bit stages, 1775 us
    best_blocks = ceil_div(x.rows, output_rows(kConfigs[best], p)) * ceil_div(w.rows, output_rows(kConfigs[best], q, false));
  }
  // sm_90: the wgmma kernel wherever its tiles fill every SM (H100, w1a2 8192^3: 262 us against
  // 409-427 us for the folded mma.sync kernel), and for long K down to a quarter of the SMs when
  // its 128-row tiles are full (w1a2 128 x 8192 x 8192: 9.2 against 19.4 us; 256 x 4096 x 4096:
  // 6.6 against 16.4 us). Short K (1024^3: 7.7 against 9.3 us) and M = 64 (half-empty tiles)
  // stay on the mma.sync tiles.
  const int wgmma = config_serves(kWgmmaWide, p, q, target, pin) ? kWgmmaWide : kWgmmaNarrow;
  if (!pinned && config_serves(wgmma, p, q, target, pin)) {
    const int64_t blocks = ceil_div(x.rows, kConfigs[wgmma].bm) * ceil_div(w.rows, kConfigs[wgmma].bn);
    const bool long_k = ceil_div(chunks, 8) >= 4 && x.rows >= kWgmmaTileRows;  // >= 4 stages of 1024 bits
    if (blocks >= multiprocessors || (long_k && 4 * blocks >= multiprocessors)) {
      best = wgmma;
      best_blocks = blocks;
    }
  }
  // Latency-bound small tiles (measured on H100): a single K step wins, so take the 256-bit
  // stage for K <= 256 bits and the 1024-bit stage otherwise.
  if (!pinned && (best == 2 || best == 4)) best = chunks <= 2 ? 2 : 4;
  if (!pinned && (best == 7 || best == 8)) best = chunks <= 2 ? 7 : 8;
  // Split K across blocks when the output alone cannot fill the GPU and K is long enough to
  // pay for the reduction (about 2 us through a cluster on H100; not worth it for K <= 1024).
  const TileConfig& cfg = kConfigs[best];
  const int64_t k_tiles = ceil_div(chunks, cfg.kt / 128);
  const int64_t slots = static_cast<int64_t>(multiprocessors) * cfg.blocks_per_sm;
  int split = 1;
  // A cluster holds at most 8 blocks (the portable limit).
  const int64_t max_split = clusters ? 8 : 16;
  const bool long_k = chunks > 8;
  if (long_k && best_blocks > 0 && best_blocks < slots && !whole_outputs(cfg))
    split = static_cast<int>(std::min<int64_t>({slots / best_blocks, k_tiles, max_split}));
  split = std::max(split, 1);
  if (pin.split_k > 0 && !whole_outputs(cfg))
    split = static_cast<int>(std::min<int64_t>({pin.split_k, k_tiles, max_split}));
  // Make every split own at least one tile.
  while (split > 1 && ceil_div(k_tiles, ceil_div(k_tiles, split)) < split) --split;
  const bool generic = !whole_outputs(cfg) && (pin.generic || !is_fast_path(p, q));

  GemmPlan plan;
  plan.config = best;
  plan.split_k = split;
  plan.generic = generic;
  plan.cluster_split = split > 1 && clusters;
  plan.name = std::string(generic ? "generic_" : "") + "w" + std::to_string(q) + "a" + std::to_string(p) +
              "_" + cfg.name + "_split" + std::to_string(split) + (plan.cluster_split ? "c" : "");
  return plan;
}

GemmWorkspaceSize gemm_workspace_size(const GemmPlan& plan, const PackedMatrix& x, const PackedMatrix& w) {
  if (plan.split_k == 1 || plan.cluster_split) return {};
  const TileConfig& cfg = kConfigs[plan.config];
  const int64_t tiles = ceil_div(x.rows, output_rows(cfg, x.quant.bits)) * ceil_div(w.rows, output_rows(cfg, w.quant.bits, false));
  return {static_cast<size_t>(x.rows) * w.rows, static_cast<size_t>(tiles)};
}

void launch_gemm(const GemmPlan& plan, const PackedMatrix& x, const PackedMatrix& w, int32_t* y,
                 const GemmWorkspace& workspace, cudaStream_t stream) {
  const TileConfig& cfg = kConfigs[plan.config];
  GemmParams params{};
  params.x_planes = x.planes_mem;
  params.w_planes = w.planes_mem;
  params.x_row_sums = x.row_sums_mem;
  params.w_row_sums = w.row_sums_mem;
  params.y = y;
  params.M = static_cast<int>(x.rows);
  params.N = static_cast<int>(w.rows);
  params.x_rows_padded = static_cast<int>(x.rows_padded);
  params.w_rows_padded = static_cast<int>(w.rows_padded);
  params.words = static_cast<int>(x.words);
  params.p = x.quant.bits;
  params.q = w.quant.bits;
  params.tm = static_cast<int>(output_rows(cfg, params.p));
  params.tn = static_cast<int>(output_rows(cfg, params.q, false));
  for (int i = 0; i < kMaxPlanes; ++i) {
    params.cx[i] = i < params.p ? plane_coefficient(i, params.p, x.quant.encoding) : 0;
    params.cw[i] = i < params.q ? plane_coefficient(i, params.q, w.quant.encoding) : 0;
  }
  params.ox = real_offset(x.quant);
  params.ow = real_offset(w.quant);
  params.k_ox_ow = x.cols * params.ox * params.ow;

  const dim3 grid(static_cast<unsigned>(ceil_div(w.rows, params.tn)), static_cast<unsigned>(ceil_div(x.rows, params.tm)),
                  static_cast<unsigned>(plan.split_k));
  require(grid.y <= 65535, APNN_STATUS_UNSUPPORTED,
          "M = " + std::to_string(x.rows) + " needs more than 65535 row tiles; split M");
  params.cluster_split = plan.cluster_split ? 1 : 0;
  if (plan.split_k > 1 && !plan.cluster_split) {
    require(workspace.workspace != nullptr && workspace.tile_counters != nullptr, APNN_STATUS_INTERNAL_ERROR,
            "split-K GEMM launched without a workspace");
    params.workspace = workspace.workspace;
    params.tile_counters = workspace.tile_counters;
  }
  switch (plan.config) {
    case 0: return launch_config<0>(params.p, params.q, plan.generic, params, grid, stream);
    case 1: return launch_config<1>(params.p, params.q, plan.generic, params, grid, stream);
    case 2: return launch_config<2>(params.p, params.q, plan.generic, params, grid, stream);
    case 3: return launch_config<3>(params.p, params.q, plan.generic, params, grid, stream);
    case 4: return launch_config<4>(params.p, params.q, plan.generic, params, grid, stream);
    case 5: return launch_folded<5>(params.p, params.q, params, grid, stream);
    case 6: return launch_folded<6>(params.p, params.q, params, grid, stream);
    case 7: return launch_config<7>(params.p, params.q, plan.generic, params, grid, stream);
    case 8: return launch_config<8>(params.p, params.q, plan.generic, params, grid, stream);
    case kWgmmaWide:
    case kWgmmaNarrow: return launch_wgmma_gemm(params, grid, stream);
  }
}

}  // namespace apnn
