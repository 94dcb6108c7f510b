// Tile configurations, the compile-time fast paths, and the choice among them.
#include "gemm/gemm_dispatch.h"

#include <algorithm>
#include <array>
#include <climits>
#include <string>
#include <utility>

#include "common/cuda_check.h"
#include "common/quant.h"
#include "gemm/bitplane_gemm_folded_kernel.cuh"
#include "gemm/bitplane_gemm_kernel.cuh"
#include "gemm/gemm_wgmma.h"

namespace apnn {
namespace {

// The tile configurations, by name; the values are the indices apnn_context_set_gemm_override
// takes (APNN_GEMM_CONFIGS of them).
enum GemmTile : int {
  kTile256x128K1024,
  kTile128x128K512,
  kTile64x64K256,
  kTile128x128K1024,
  kTile64x64K1024,
  kFolded128x256K512,
  kFolded128x128K1024,
  kTile32x32K256,
  kTile32x32K1024,
  kWgmma128x128K1024,
  kWgmma128x64K1024,
  kGemmTileCount
};

enum class TileKind {
  kMmaSync,  // bitplane_gemm_kernel: bm x bn bit-rows x bit-columns, all plane pairs in one tile
  kFolded,   // bitplane_gemm_folded_kernel: bm x bn output rows x columns, plane pairs folded in registers
  kWgmma,    // bitplane_gemm_wgmma_kernel (sm_90a): bm x bn output rows x columns
};

// One row per configuration, in GemmTile order: the kernel instantiations, the planner's
// estimates and the names in GemmPlan::name all come from here.
struct TileConfig {
  GemmTile id;
  const char* name;
  TileKind kind;
  int bm, bn;         // per block (bit-rows x bit-columns, or output rows x columns: see TileKind)
  int wm, wn;         // per warp (the mma.sync and folded kernels)
  int kt, stages;     // K bits per pipeline stage, stages in the ring (wgmma: gemm_wgmma.cu picks)
  int blocks_per_sm;  // expected residency, for the wave count
  double efficiency;  // relative speed per block tile at full occupancy
};
constexpr TileConfig kConfigs[] = {
    {kTile256x128K1024, "b256x128_k1024", TileKind::kMmaSync, 256, 128, 64, 64, 1024, 3, 1, 0.87},
    {kTile128x128K512, "b128x128_k512", TileKind::kMmaSync, 128, 128, 64, 64, 512, 4, 2, 1.00},
    {kTile64x64K256, "b64x64_k256", TileKind::kMmaSync, 64, 64, 32, 32, 256, 4, 4, 0.50},
    {kTile128x128K1024, "b128x128_k1024", TileKind::kMmaSync, 128, 128, 64, 64, 1024, 3, 2, 1.02},
    {kTile64x64K1024, "b64x64_k1024", TileKind::kMmaSync, 64, 64, 32, 32, 1024, 2, 4, 0.52},
    {kFolded128x256K512, "folded128x256_k512", TileKind::kFolded, 128, 256, 64, 64, 512, 3, 1, 1.40},
    {kFolded128x128K1024, "folded128x128_k1024", TileKind::kFolded, 128, 128, 64, 64, 1024, 2, 2, 1.52},
    // Latency tiles for small outputs (M=64-type): 2 warps and few outputs per thread, so the
    // combine-and-store tail, which dominates there, is short and spread over more blocks.
    {kTile32x32K256, "b32x32_k256", TileKind::kMmaSync, 32, 32, 16, 32, 256, 2, 8, 0.25},
    {kTile32x32K1024, "b32x32_k1024", TileKind::kMmaSync, 32, 32, 16, 32, 1024, 2, 8, 0.26},
    // Hopper's warpgroup binary MMA (gemm_wgmma.h), one accumulator set per plane pair.
    {kWgmma128x128K1024, "wgmma128x128_k1024", TileKind::kWgmma, kWgmmaTileRows, 128, 0, 0, 1024, 0, 1, 2.3},
    {kWgmma128x64K1024, "wgmma128x64_k1024", TileKind::kWgmma, kWgmmaTileRows, 64, 0, 0, 1024, 0, 1, 2.0},
};
constexpr int kNumConfigs = sizeof(kConfigs) / sizeof(kConfigs[0]);
constexpr bool rows_in_tile_order() {
  for (int c = 0; c < kNumConfigs; ++c)
    if (kConfigs[c].id != c) return false;
  return true;
}
static_assert(kNumConfigs == kGemmTileCount && rows_in_tile_order(), "one kConfigs row per GemmTile, in order");
static_assert(kNumConfigs == kNumGemmConfigs, "keep APNN_GEMM_CONFIGS (apnn.h) in step");

// Plane counts (x planes P, w planes Q) with compile-time specialized kernels; other counts run
// the generic kernel (P = Q = 0), which reads them from the parameters.
struct Planes {
  int p, q;
};
constexpr Planes kFastPlanes[] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {2, 2}, {4, 2}, {4, 4}, {8, 1}, {8, 2}};
// The folded kernel's: w1a2, w1a4, w2a2 (more planes spill registers).
constexpr Planes kFoldedPlanes[] = {{2, 1}, {4, 1}, {2, 2}};

template <size_t N>
bool listed(const Planes (&list)[N], int p, int q) {
  for (const Planes& pq : list)
    if (pq.p == p && pq.q == q) return true;
  return false;
}
bool is_fast_path(int p, int q) { return listed(kFastPlanes, p, q); }
bool is_folded_path(int p, int q) { return listed(kFoldedPlanes, p, q); }

// The kernel of configuration Config for P x Q planes, from its kConfigs row.
template <int Config, int P, int Q>
struct Kernel {
  static constexpr TileConfig c = kConfigs[Config];
  static_assert(c.kind == TileKind::kMmaSync, "an mma.sync configuration");
  using Cfg = BitplaneGemm<c.bm, c.bn, c.wm, c.wn, c.kt, c.stages, P, Q>;
  static constexpr auto fn = bitplane_gemm_kernel<c.bm, c.bn, c.wm, c.wn, c.kt, c.stages, P, Q>;
};
template <int Config, int P, int Q>
struct FoldedKernel {
  static constexpr TileConfig c = kConfigs[Config];
  static_assert(c.kind == TileKind::kFolded, "a folded configuration");
  using Cfg = FoldedGemm<c.bm, c.bn, c.wm, c.wn, c.kt, c.stages, P, Q>;
  static constexpr auto fn = bitplane_gemm_folded_kernel<c.bm, c.bn, c.wm, c.wn, c.kt, c.stages, P, Q>;
};

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

// Launches K<Config, P, Q> if kList[I..] names p x q; `launched` says whether one did.
template <template <int, int, int> class K, int Config, const auto& kList, size_t I = 0>
void launch_planes(int p, int q, const GemmParams& params, dim3 grid, cudaStream_t stream, bool& launched) {
  if constexpr (I < sizeof(kList) / sizeof(kList[0])) {
    if (p == kList[I].p && q == kList[I].q) {
      launch_kernel<K<Config, kList[I].p, kList[I].q>>(params, grid, stream);
      launched = true;
      return;
    }
    launch_planes<K, Config, kList, I + 1>(p, q, params, grid, stream, launched);
  }
}

template <int Config>
void launch_config(int p, int q, const GemmParams& params, dim3 grid, cudaStream_t stream, bool generic) {
  bool launched = false;
  if constexpr (kConfigs[Config].kind == TileKind::kFolded) {
    launch_planes<FoldedKernel, Config, kFoldedPlanes>(p, q, params, grid, stream, launched);
    if (!launched) throw Error(APNN_STATUS_INTERNAL_ERROR, "no folded kernel for these plane counts");
  } else if constexpr (kConfigs[Config].kind == TileKind::kWgmma) {
    launch_wgmma_gemm(params, grid, stream);
  } else {
    if (!generic) launch_planes<Kernel, Config, kFastPlanes>(p, q, params, grid, stream, launched);
    if (!launched) launch_kernel<Kernel<Config, 0, 0>>(params, grid, stream);
  }
}

// launch_config of each configuration, indexed by GemmTile.
using ConfigLauncher = void (*)(int, int, const GemmParams&, dim3, cudaStream_t, bool);
template <size_t... C>
constexpr std::array<ConfigLauncher, sizeof...(C)> config_launchers(std::index_sequence<C...>) {
  return {launch_config<static_cast<int>(C)>...};
}
constexpr auto kLaunchers = config_launchers(std::make_index_sequence<kNumConfigs>());

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether a configuration's tile counts output rows x columns (all planes of each) rather
// than bit-rows x bit-columns.
bool whole_outputs(const TileConfig& cfg) { return cfg.kind != TileKind::kMmaSync; }

// Output rows (or columns) per block of a configuration for an operand of `planes` planes.
int64_t output_rows(const TileConfig& cfg, int planes, bool rows = true) {
  return whole_outputs(cfg) ? (rows ? cfg.bm : cfg.bn) : (rows ? cfg.bm : cfg.bn) / planes;
}

// Whether configuration `c` can run p x q planes on this target.
bool config_serves(int c, int p, int q, const GemmTarget& target, const GemmOverride& pin) {
  const TileConfig& cfg = kConfigs[c];
  if (cfg.kind == TileKind::kFolded) return is_folded_path(p, q) && !pin.generic;
  if (cfg.kind == TileKind::kWgmma) return target.wgmma && !pin.generic && has_wgmma_gemm(p, q, cfg.bn);
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
    if (!config_serves(c, p, q, target, pin) || (cfg.kind == TileKind::kWgmma && !pinned)) continue;  // wgmma: chosen below
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
    if (p == 2 && q == 1) best = kFolded128x128K1024;  // w1a2: folded 128x128, 1024-bit stages: 423-427 us at 8192^3 (512-bit: 454)
    if (p == 2 && q == 2) best = kTile256x128K1024;  // w2a2: 256x128 / 1024-bit stages, 967 us (folded: 1196 us)
    if (p == 4 && q == 1) best = kTile128x128K512;  // w1a4: 128x128 / 512-bit stages, 944 us (folded: 1205 us)
    if (p == 4 && q == 2) best = kTile128x128K512;  // w2a4: 128x128 / 512-bit stages, 1775 us
    best_blocks = ceil_div(x.rows, output_rows(kConfigs[best], p)) * ceil_div(w.rows, output_rows(kConfigs[best], q, false));
  }
  // sm_90: the wgmma kernel wherever its tiles fill every SM (H100, w1a2 8192^3: 262 us against
  // 409-427 us for the folded mma.sync kernel), and for long K down to a quarter of the SMs when
  // its 128-row tiles are full (w1a2 128 x 8192 x 8192: 9.2 against 19.4 us; 256 x 4096 x 4096:
  // 6.6 against 16.4 us). Short K (1024^3: 7.7 against 9.3 us) and M = 64 (half-empty tiles)
  // stay on the mma.sync tiles.
  const int wgmma = config_serves(kWgmma128x128K1024, p, q, target, pin) ? kWgmma128x128K1024 : kWgmma128x64K1024;
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
  if (!pinned && (best == kTile64x64K256 || best == kTile64x64K1024))
    best = chunks <= 2 ? kTile64x64K256 : kTile64x64K1024;
  if (!pinned && (best == kTile32x32K256 || best == kTile32x32K1024))
    best = chunks <= 2 ? kTile32x32K256 : kTile32x32K1024;
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
  require(plan.config >= 0 && plan.config < kNumConfigs, APNN_STATUS_INTERNAL_ERROR, "no such GEMM tile configuration");
  kLaunchers[plan.config](params.p, params.q, params, grid, stream, plan.generic);
}

}  // namespace apnn
