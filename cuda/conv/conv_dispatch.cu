// The choice among convolution plans (split-K, fused or separate epilogue) and the launches.
#include "conv/conv_dispatch.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <utility>

#include "common/cuda_check.h"
#include "common/epilogue_thresholds.h"
#include "common/quant.h"
#include "conv/conv_grouped.h"
#include "conv/conv_halo.h"
#include "conv/conv_kernel.cuh"

namespace apnn {
// One launch's plan (conv_dispatch.h declares it for ConvRunner::plan).
struct ConvPlan {
  int tm = 0, tn = 0;
  int row_tiles = 0, col_tiles = 0;
  int k_tiles = 0;
  int split = 1;
  bool fused = false;  // epilogue inside the convolution kernel
  bool pool_fused = false;  // with its 2x2 / 2 max pool (tiled kernel, packed output)
  int config = -1;     // tiled-kernel configuration (kTileConfigs), or -1: the fallback kernel
  bool register_finish = false;  // finish from the wgmma accumulators (conv_register_finish.cuh)
  bool halo = false;   // the halo kernel (conv_halo.h) with this output; the fields above unused
  HaloOutput halo_output = HaloOutput::kInt32;
};

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// What the finish from the accumulators can serve (conv_register_finish.cuh), besides one K
// split: sm_90a code (compute capability 9.0), plane counts 1 and 2, no weight-offset term.
struct RegisterFinishScope {
  bool int32_out = false;   // raw or separate-epilogue launches
  bool fused_out = false;   // a fused epilogue: packed output, threshold table, packed residual or none
};

// Configurations of the tiled (cluster split-K) kernel, sm_90: the block tile (bm x bn bit-rows,
// kt bits of K per stage), the warp tile (wm x wn), the pipeline stages, the resident blocks the
// registers must allow (__launch_bounds__), and for the planner the blocks per SM a launch
// fills (0: 2.5, see plan_tiled). any_planes: built for every plane count (else the fast ones
// only); packed_taps: built for weights with packed taps (launch_tiled_any).
enum ConvTileId : int {
  kConv64x64K1024,     // latency: small tiles, long K steps, split across a cluster
  kConv128x128K512,    // throughput: large tiles
  kConv256x64K512,     // many planes (an 8-bit im2col first layer): 32 pixels per block
  kConv128x64K512S3,   // short K, many pixels: 3 resident blocks of 8 warps per SM
  kConv256x128K512,    // the 128x128 tiles' work in one wave: half the tiles, less read per product
  kConvTileCount
};

struct TileConfig {
  ConvTileId id;
  const char* name;
  int bm, bn, kt;
  int wm, wn, stages, min_blocks;
  int blocks_per_sm;
  bool any_planes, packed_taps;
};
constexpr TileConfig kTileConfigs[] = {
    {kConv64x64K1024, "b64x64_k1024", 64, 64, 1024, 32, 32, 4, 1, 0, true, true},
    {kConv128x128K512, "b128x128_k512", 128, 128, 512, 64, 64, 4, 1, 2, true, true},
    {kConv256x64K512, "b256x64_k512", 256, 64, 512, 64, 32, 3, 1, 2, true, false},
    {kConv128x64K512S3, "b128x64_k512_s3", 128, 64, 512, 32, 32, 3, 3, 3, true, true},
    {kConv256x128K512, "b256x128_k512", 256, 128, 512, 64, 64, 4, 1, 1, false, false},
};
constexpr int kTileConfigCount = static_cast<int>(sizeof(kTileConfigs) / sizeof(kTileConfigs[0]));
constexpr bool rows_in_tile_order() {
  for (int c = 0; c < kTileConfigCount; ++c)
    if (kTileConfigs[c].id != c) return false;
  return true;
}
static_assert(kTileConfigCount == kConvTileCount && rows_in_tile_order(), "one kTileConfigs row per ConvTileId, in order");
constexpr int kMaxClusterSplit = 8;
constexpr int64_t kShortKBits = 2304;  // 3x3 over 256 channels
constexpr int kMinRawSplitKTiles = 8;  // k tiles below which a raw (int32) output runs unsplit

// Plane counts with compile-time kernels (launch_tiled_any); the others run the generic ones.
bool fast_planes(int p, int q) { return (p == 1 && q == 1) || (p == 2 && q == 1) || (p == 2 && q == 2); }

// Whether the halo kernel (conv_halo.h) computes the call, and what it writes: a 3x3 convolution
// over at most 256 channels or a 5x5 over at most 128 at stride 1, a 1x1 or 3x3 over at most 256
// at stride 2 (no pool, no residual), padding K / 2,
// 1 or 2 planes per operand, activations without offset, no pinned K split; int32 results or a
// packed output through the threshold table, with a 2x2 / 2 max pool or a packed residual.
bool halo_serves(const ConvCall& call, const ConvOverride& pin, bool thresholds, HaloOutput& output) {
  const auto& g = call.geometry;
  const auto& w = *call.w;
  if (!halo_conv_planes(call.x->quant.bits, w.quant.bits)) return false;
  const int stride = static_cast<int>(g.stride_h);
  if (g.kh != g.kw || g.stride_w != g.stride_h ||
      !halo_conv_shape(static_cast<int>(g.kh), stride, static_cast<int>(g.channels)) || g.pad_h != g.kh / 2 ||
      g.pad_w != g.kw / 2)
    return false;
  // Weights of 256-bit taps; activation rows of 256 bits (one or two entries) or a network's
  // unpadded rows of 64 or 128 channels.
  if (!halo_conv_row_words(call.x->words, g.channels) || w.channel_words != 8) return false;
  if (real_offset(call.x->quant) != 0 || pin.split_k > 1) return false;
  if (!call.has_epilogue) {
    output = HaloOutput::kInt32;
    return true;
  }
  const auto& ep = call.epilogue;
  if (call.y_packed == nullptr || !thresholds || ep.thresholds == nullptr || !pin.fuse) return false;
  if (call.residual.int32_values != nullptr || call.residual.planes != nullptr) {
    output = HaloOutput::kPackedResidual;
    return call.residual.planes != nullptr && ep.threshold_residual_codes > 0 && ep.pool == APNN_POOL_NONE &&
           halo_conv_outputs(stride, output);
  }
  if (ep.pool == APNN_POOL_NONE) {
    output = HaloOutput::kPacked;
    return true;
  }
  output = HaloOutput::kPackedPool;
  return ep.pool == APNN_POOL_MAX && ep.pool_size == 2 && ep.pool_stride == 2 && halo_conv_outputs(stride, output);
}

ConvPlan plan_tiled(const ConvCall& call, int multiprocessors, const ConvOverride& pin, int forced_config,
                    const RegisterFinishScope& registers) {
  const auto& g = call.geometry;
  const int p = call.x->quant.bits, q = call.w->quant.bits;
  // K in bits: taps x the activation row (channels padded to 256 bits), or packed taps.
  const int64_t k_bits = call.w->tap_words ? call.w->words * 32 : g.kh * g.kw * call.x->words * 32;
  auto tiles_of = [&](const TileConfig& c) {
    return ceil_div(g.out_pixels(), c.bm / p) * ceil_div(g.out_channels, c.bn / q);
  };
  // Measured on the H100 (w1a2 16x16 3x3, batch 1 and 8, bench_conv --sweep): the 64x64 /
  // KT=1024 tiles with a cluster split win while they number under 3 waves; from 3 waves the
  // 128x64 tiles with 3 resident blocks (batch 8, C=512..768: fused 29-35 -> 18-27 us), from 6
  // the 128x128 tiles, which read the least per product (C=896: fused 52.7 -> 39.0 us).
  int config = forced_config;
  if (config < 0) {
    const int64_t small_tiles = tiles_of(kTileConfigs[kConv64x64K1024]);
    config = small_tiles >= 6 * multiprocessors                          ? kConv128x128K512
             : small_tiles >= 3 * multiprocessors && fast_planes(p, q) ? kConv128x64K512S3
                                                                       : kConv64x64K1024;
  }
  // With 4+ activation planes the square tiles hold only 8-16 pixels; short K (a first layer's
  // im2col rows) then leaves every block mostly prologue and epilogue.
  if (forced_config < 0 && p >= 4 && q <= 2 && tiles_of(kTileConfigs[kConv256x64K512]) >= 2 * multiprocessors)
    config = kConv256x64K512;
  // Short K over many pixels (networks' early layers): a block's time is its prologue, one or two
  // stages and the finish, so resident blocks matter more than tile reuse.
  if (forced_config < 0 && k_bits <= kShortKBits && fast_planes(p, q) &&
      (config == kConv128x128K512 || tiles_of(kTileConfigs[kConv64x64K1024]) >= 4 * multiprocessors))
    config = kConv128x64K512S3;
  // Short K over 4+ waves of wider tiles whose columns the channels fill: the 128x128 (packed
  // taps) or 256x128 tiles read less per product than the 3 resident 128x64 blocks. Measured per
  // layer (bench_nn, batch 8 and 256, every layer pinned to the wide tiles against the planner):
  // VGG's 112x112 / 56x56 / 28x28 and ResNet-18's layer2 / layer3 convolutions 5-30% faster; with
  // fewer waves (ResNet's layer2 at batch 8, its 7x7 layer4 at batch 256) or a partly empty
  // column tile (64 or 192 channels: ResNet's layer1, AlexNet's conv2) slower.
  if (forced_config < 0 && config == kConv128x64K512S3) {
    const int wide = call.w->tap_words ? kConv128x128K512 : kConv256x128K512;
    if (g.out_channels % (kTileConfigs[wide].bn / q) == 0 && tiles_of(kTileConfigs[wide]) >= 4 * multiprocessors)
      config = wide;
  }
  // Measured (w1a2 16x16 3x3 C=1024, batch 8): 256 tiles of 128x128 run in two waves of one
  // block per SM (20.7 us), 128 of 256x128 in one (18.4 us); built for the fast plane counts.
  if (forced_config < 0 && config == kConv128x128K512 && tiles_of(kTileConfigs[kConv256x128K512]) <= multiprocessors)
    config = kConv256x128K512;
  // A configuration not built for these planes or for packed taps (also when pinned) falls back
  // to the 128x128 tiles, which are built for both.
  const TileConfig& chosen = kTileConfigs[config];
  if ((!chosen.any_planes && !fast_planes(p, q)) || (!chosen.packed_taps && call.w->tap_words))
    config = kConv128x128K512;
  const TileConfig& cfg = kTileConfigs[config];
  ConvPlan plan;
  plan.config = config;
  plan.tm = cfg.bm / p;
  plan.tn = cfg.bn / q;
  const auto& ep = call.epilogue;
  const bool residual = call.residual.int32_values != nullptr || call.residual.planes != nullptr;
  plan.pool_fused = call.has_epilogue && ep.pool == APNN_POOL_MAX && ep.pool_size == 2 && ep.pool_stride == 2 &&
                    call.y_packed != nullptr && !residual && fast_planes(p, q) && plan.tm % 4 == 0 &&
                    plan.tn % 32 == 0 && pin.fuse;
  plan.row_tiles = static_cast<int>(ceil_div(plan.pool_fused ? 4 * g.pooled_pixels() : g.out_pixels(), plan.tm));
  plan.col_tiles = static_cast<int>(ceil_div(g.out_channels, plan.tn));
  plan.k_tiles = static_cast<int>(ceil_div(k_bits, cfg.kt));
  const int64_t blocks = static_cast<int64_t>(plan.row_tiles) * plan.col_tiles;
  const int64_t slots = cfg.blocks_per_sm ? static_cast<int64_t>(cfg.blocks_per_sm) * multiprocessors
                                          : static_cast<int64_t>(multiprocessors) * 5 / 2 + 6;
  int split = 1;
  if (pin.split_k > 0) {
    split = pin.split_k;
  } else if (blocks < slots) {
    // Cluster launches fill about 2.5 blocks per SM (measured: 336 blocks of 64x64 run in one
    // wave on 132 SMs, 384 take two), so keep blocks x split under that.
    split = static_cast<int>(std::min<int64_t>(slots / blocks, kMaxClusterSplit));
    // A raw int32 output gains less from the split than its cluster reduction costs (about 1.5
    // us) unless K is long and the blocks few: w1a2 16x16 3x3, C=128..1024 (3..9 k tiles), batch
    // 1 and 8 ran 0.9-2.3 us faster unsplit on the H100. A fused epilogue finished from the
    // accumulators costs about as little as that int32 store, so it follows the same rule; the
    // shared-memory finish gains from the split.
    const bool store_like = !call.has_epilogue || (registers.fused_out && pin.fuse);
    if (store_like && (plan.k_tiles < kMinRawSplitKTiles || 2 * blocks > multiprocessors)) split = 1;
  }
  split = std::max(1, std::min({split, plan.k_tiles, kMaxClusterSplit}));
  while (split > 1 && ceil_div(plan.k_tiles, ceil_div(plan.k_tiles, split)) < split) --split;  // no empty splits
  plan.split = split;
  plan.fused = plan.pool_fused || (call.has_epilogue && call.epilogue.pool == APNN_POOL_NONE &&
                                   (call.y_packed == nullptr || plan.tn % 32 == 0) && pin.fuse);
  plan.register_finish = split == 1 && (plan.fused ? registers.fused_out : registers.int32_out);
  return plan;
}

ConvPlan plan_conv(const ConvCall& call, int multiprocessors, const ConvOverride& pin) {
  const auto& g = call.geometry;
  const int p = call.x->quant.bits, q = call.w->quant.bits;
  ConvPlan plan;
  plan.tm = conv_detail::kBM / p;
  plan.tn = conv_detail::kBN / q;
  plan.row_tiles = static_cast<int>(ceil_div(g.out_pixels(), plan.tm));
  plan.col_tiles = static_cast<int>(ceil_div(g.out_channels, plan.tn));
  plan.k_tiles = static_cast<int>(g.kh * g.kw * (call.x->words / 8));
  const int64_t blocks = static_cast<int64_t>(plan.row_tiles) * plan.col_tiles;
  // The fused epilogue needs the whole K sum in one block, no pooling across tiles, and for
  // packed output whole 32-channel words per block.
  const bool fusable = call.has_epilogue && call.epilogue.pool == APNN_POOL_NONE &&
                       (call.y_packed == nullptr || plan.tn % 32 == 0) && pin.fuse;
  int split = 1;
  if (pin.split_k > 0) {
    split = pin.split_k;
  } else if (!fusable && blocks < multiprocessors) {
    // Latency-bound shapes: spread K so that about two blocks run per SM.
    split = static_cast<int>(std::min<int64_t>({ceil_div(2 * multiprocessors, blocks), plan.k_tiles / 2, 16}));
  }
  split = std::max(1, std::min(split, plan.k_tiles));
  while (split > 1 && ceil_div(plan.k_tiles, ceil_div(plan.k_tiles, split)) < split) --split;  // no empty splits
  plan.split = split;
  plan.fused = fusable && split == 1;
  return plan;
}

// The kernel of configuration Config for P x Q planes (0: any count, read from the parameters).
template <int Config, int P, int Q, bool TapPacked>
struct TiledKernel {
  static constexpr TileConfig kCfg = kTileConfigs[Config];
  using Cfg = conv_detail::ConvTile<kCfg.bm, kCfg.bn, kCfg.wm, kCfg.wn, kCfg.kt, kCfg.stages>;
  static constexpr auto fn = conv_tile_kernel<kCfg.bm, kCfg.bn, kCfg.wm, kCfg.wn, kCfg.kt, kCfg.stages,
                                              kCfg.min_blocks, P, Q, TapPacked>;
};

// dependent: launched as a programmatic dependent of the stream's previous kernel (compute
// capability 9.0+; the kernel waits for it before reading activations).
template <int Config, int P, int Q, bool TapPacked = false>
void launch_tiled(const ConvKernelParams& prm, dim3 grid, bool dependent, cudaStream_t stream) {
  using K = TiledKernel<Config, P, Q, TapPacked>;
  allow_dynamic_shared_memory<K::fn>(K::Cfg::kSmemBytes + K::Cfg::kResidualTablesBytes);
  // The residual's part tables only where they are read (the others keep their resident blocks).
  const bool residual_tables = prm.mode == kConvOutFusedPacked && prm.ep.thresholds != nullptr &&
                               prm.ep.threshold_residual_codes > 0 && prm.res.planes != nullptr;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(K::Cfg::kThreads);
  config.dynamicSmemBytes = K::Cfg::kSmemBytes + (residual_tables ? K::Cfg::kResidualTablesBytes : 0);
  config.stream = stream;
  cudaLaunchAttribute attrs[2];
  unsigned count = 0;
  if (grid.z > 1) {
    attrs[count].id = cudaLaunchAttributeClusterDimension;
    attrs[count].val.clusterDim.x = 1;
    attrs[count].val.clusterDim.y = 1;
    attrs[count].val.clusterDim.z = grid.z;
    ++count;
  }
  if (dependent) {
    attrs[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  config.attrs = attrs;
  config.numAttrs = count;
  APNN_CUDA_CHECK(cudaLaunchKernelEx(&config, K::fn, prm));
}

template <int Config>
void launch_tiled_any(int p, int q, const ConvKernelParams& prm, dim3 grid, bool dependent, cudaStream_t stream) {
  if constexpr (!kTileConfigs[Config].any_planes) {  // the fast plane counts only (plan_tiled)
    require(fast_planes(p, q) && !prm.tap_words, APNN_STATUS_INTERNAL_ERROR,
            "the 256x128 convolution tiles are built for 1 or 2 planes without packed taps");
    if (p == 1 && q == 1) return launch_tiled<Config, 1, 1>(prm, grid, dependent, stream);
    if (p == 2 && q == 1) return launch_tiled<Config, 2, 1>(prm, grid, dependent, stream);
    return launch_tiled<Config, 2, 2>(prm, grid, dependent, stream);
  }
  if constexpr (kTileConfigs[Config].packed_taps) {  // packed taps (networks' narrow layers)
    if (prm.tap_words) {
      if (p == 1 && q == 1) return launch_tiled<Config, 1, 1, true>(prm, grid, dependent, stream);
      if (p == 2 && q == 1) return launch_tiled<Config, 2, 1, true>(prm, grid, dependent, stream);
      if (p == 2 && q == 2) return launch_tiled<Config, 2, 2, true>(prm, grid, dependent, stream);
      return launch_tiled<Config, 0, 0, true>(prm, grid, dependent, stream);
    }
  }
  if (p == 1 && q == 1) return launch_tiled<Config, 1, 1>(prm, grid, dependent, stream);
  if (p == 2 && q == 1) return launch_tiled<Config, 2, 1>(prm, grid, dependent, stream);
  if (p == 2 && q == 2) return launch_tiled<Config, 2, 2>(prm, grid, dependent, stream);
  if constexpr (Config == kConv256x64K512) {  // 8-bit activations x 1-bit weights: an im2col first layer
    if (p == 8 && q == 1) return launch_tiled<Config, 8, 1>(prm, grid, dependent, stream);
  }
  if constexpr (kTileConfigs[Config].any_planes) launch_tiled<Config, 0, 0>(prm, grid, dependent, stream);
}

// launch_tiled_any of each configuration, by index.
using TiledLauncher = void (*)(int, int, const ConvKernelParams&, dim3, bool, cudaStream_t);
template <size_t... C>
constexpr std::array<TiledLauncher, sizeof...(C)> tiled_launchers(std::index_sequence<C...>) {
  return {launch_tiled_any<static_cast<int>(C)>...};
}
constexpr auto kTiledLaunchers = tiled_launchers(std::make_index_sequence<kTileConfigCount>());

template <int P, int Q>
void launch_conv(const ConvKernelParams& prm, dim3 grid, cudaStream_t stream) {
  bitplane_conv_kernel<P, Q><<<grid, conv_detail::kThreads, 0, stream>>>(prm);
  cuda_check_launch("bitplane_conv_kernel");
}

void launch_conv_any(int p, int q, const ConvKernelParams& prm, dim3 grid, cudaStream_t stream) {
  // Compile-time fast paths for the common binary-weight layers; the generic kernel otherwise.
  if (p == 1 && q == 1) return launch_conv<1, 1>(prm, grid, stream);
  if (p == 2 && q == 1) return launch_conv<2, 1>(prm, grid, stream);
  if (p == 2 && q == 2) return launch_conv<2, 2>(prm, grid, stream);
  launch_conv<0, 0>(prm, grid, stream);
}


// Whether a tensor of the call has rows without the packed layout's 256-bit padding (a network's
// own tensors, planned for the halo kernel only).
bool unpadded_rows(const ConvCall& call) {
  return call.x->words % 8 != 0 || (call.residual.planes != nullptr && call.residual.words % 8 != 0) ||
         (call.y_packed != nullptr && call.y_packed->words % 8 != 0);
}

bool w_taps_ok(const ConvCall& call, const ConvPlan& plan) {
  return call.w->tap_words == 0 || plan.halo ||
         (plan.config >= 0 && kTileConfigs[plan.config].packed_taps && call.w->tap_words % 2 == 0);
}

void launch_epilogue(const ConvCall& call, const ConvKernelParams& prm, cudaStream_t stream) {
  const auto& g = call.geometry;
  EpilogueKernelParams ek{};
  ek.y = prm.y;
  ek.O = prm.O;
  ek.OH = prm.OH;
  ek.OW = prm.OW;
  ek.PH = static_cast<int>(g.pooled_h);
  ek.PW = static_cast<int>(g.pooled_w);
  ek.pooled_pixels = static_cast<int>(g.pooled_pixels());
  ek.ep = prm.ep;
  ek.res = prm.res;
  ek.oq = prm.oq;
  ek.y_float = call.y_packed ? nullptr : static_cast<float*>(call.y_mem);
  ek.out_planes = prm.out_planes;
  ek.out_row_sums = prm.out_row_sums;
  ek.out_rows_padded = prm.out_rows_padded;
  ek.out_words = prm.out_words;
  const int threads = 256;
  const int64_t blocks = ceil_div(static_cast<int64_t>(ek.pooled_pixels) * 32, threads);
  conv_epilogue_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(ek);
  cuda_check_launch("conv_epilogue_kernel");
}
}  // namespace

ConvRunner::ConvRunner() = default;

void ConvRunner::set_options(const apnn_options_t& options) {
  forced_config_ = options.conv_tiles;
  thresholds_ = options.derived_thresholds != 0;
  register_finish_ = options.conv_register_finish != 0;
  dependent_launch_ = options.dependent_launch != 0;
  halo_ = options.conv_halo;
}

ConvRunner::~ConvRunner() {
  if (workspace_) cudaFree(workspace_);
  if (row_ws_) cudaFree(row_ws_);
}

// One zeroed 64-bit word per output row for packed outputs over several column tiles; kept
// zeroed by the kernel (row_sum_parts.cuh). Grows (synchronously) outside graph capture, on
// the first call of a shape.
unsigned long long* ConvRunner::row_workspace(size_t entries, cudaStream_t stream) {
  if (entries > row_ws_entries_) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    APNN_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
    require(capturing == cudaStreamCaptureStatusNone, APNN_STATUS_INTERNAL_ERROR,
            "the convolution workspace must grow outside CUDA graph capture");
    APNN_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (row_ws_) cudaFree(row_ws_);
    row_ws_ = nullptr;
    row_ws_entries_ = 0;
    APNN_CUDA_CHECK(cudaMalloc(&row_ws_, entries * sizeof(unsigned long long)));
    APNN_CUDA_CHECK(cudaMemset(row_ws_, 0, entries * sizeof(unsigned long long)));
    row_ws_entries_ = entries;
  }
  return row_ws_;
}

int32_t* ConvRunner::workspace(size_t bytes) {
  if (bytes > workspace_bytes_) {
    if (workspace_) {
      APNN_CUDA_CHECK(cudaDeviceSynchronize());
      cudaFree(workspace_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
    }
    APNN_CUDA_CHECK(cudaMalloc(&workspace_, bytes));
    workspace_bytes_ = bytes;
  }
  return workspace_;
}

bool ConvRunner::uses_table(const ConvCall& call) const {
  const EpilogueParams& ep = call.epilogue;
  return call.has_epilogue && call.y_packed != nullptr && ep.thresholds != nullptr &&
         (thresholds_ || ep.thresholds_only);
}

ConvOverride ConvRunner::effective_override(const ConvCall& call, const GemmTarget& target) const {
  ConvOverride pin = override_;
  const EpilogueParams& ep = call.epilogue;
  if (call.has_epilogue && ep.thresholds_only &&
      (!tiled(target) || !threshold_table_fits_kernels(ep.threshold_levels, ep.threshold_residual_codes)))
    pin.fuse = false;
  return pin;
}

ConvPlan ConvRunner::plan(const ConvCall& call, const GemmTarget& target) const {
  const int multiprocessors = target.multiprocessors;
  if (!tiled(target)) return plan_conv(call, multiprocessors, effective_override(call, target));
  HaloOutput halo_output;
  const ConvOverride pin = effective_override(call, target);
  if (halo_ != 0 && target.wgmma && halo_serves(call, pin, uses_table(call), halo_output)) {
    const auto& g = call.geometry;
    ConvPlan plan;
    plan.tn = halo_conv_tile_n(call.x->quant.bits, call.w->quant.bits, static_cast<int>(g.out_channels));
    plan.col_tiles = static_cast<int>(ceil_div(g.out_channels, plan.tn));
    const int64_t spatial_tiles =
        halo_conv_tiles(static_cast<int>(g.batch), static_cast<int>(g.out_h), static_cast<int>(g.out_w));
    // Planned automatically with fewer 128-wide blocks than SMs: 64-wide ones, twice as many.
    // Measured (H100, ResNet-18 at batch 8): its layer2 (128 tiles on 132 SMs) then takes the halo
    // kernel, 5.5 instead of 7.3 us for the residual convolutions.
    if (halo_ < 0 && plan.tn == 128 && spatial_tiles * plan.col_tiles < multiprocessors) {
      plan.tn = 64;
      plan.col_tiles = static_cast<int>(ceil_div(g.out_channels, plan.tn));
    }
    // Automatic: where the tiles fill every SM at least once. Measured (H100, ResNet-18 at batch 8):
    // from half a block per SM, its layer2 (128 tiles on 132 SMs) ran 0.6-1.4 us faster per layer
    // alone, but the network 3% slower.
    const bool automatic = halo_ < 0 && forced_config_ < 0 && spatial_tiles * plan.col_tiles >= multiprocessors;
    // A block copies its tn residual channels' words of a pixel at once: whole aligned groups of
    // the residual's rows (unpadded 64-channel rows hold one group of 64).
    const bool residual_rows = call.residual.planes == nullptr || call.residual.words % (plan.tn / 32) == 0;
    // The kernel's tile counters are int: kept far from 2^31 (a block steps past the last tile).
    if ((halo_ == 1 || automatic) && residual_rows && spatial_tiles * plan.col_tiles <= (int64_t{1} << 30)) {
      plan.row_tiles = static_cast<int>(spatial_tiles);
      plan.halo = true;
      plan.halo_output = halo_output;
      plan.fused = call.has_epilogue;
      plan.pool_fused = false;
      return plan;
    }
  }
  RegisterFinishScope registers;
  const int p = call.x->quant.bits, q = call.w->quant.bits;
  if (register_finish_ && target.wgmma && fast_planes(p, q) && real_offset(call.x->quant) == 0) {
    // A residual only as a packed tensor with a table part per residual code.
    const bool table_residual = call.residual.planes != nullptr && call.epilogue.threshold_residual_codes > 0;
    const bool residual = call.residual.int32_values != nullptr || call.residual.planes != nullptr;
    registers.int32_out = true;
    registers.fused_out = call.has_epilogue && uses_table(call) && (!residual || table_residual);
  }
  return plan_tiled(call, multiprocessors, pin, forced_config_, registers);
}

bool ConvRunner::takes_unpadded_rows(const ConvCall& call, const GemmTarget& target) const {
  return call.geometry.groups == 1 && tiled(target) && plan(call, target).halo;
}

std::string ConvRunner::kernel_name(const ConvCall& call, const GemmTarget& target) const {
  if (call.geometry.groups > 1) return call.has_epilogue ? "conv_grouped_direct_separate_epilogue" : "conv_grouped_direct";
  const ConvPlan plan = this->plan(call, target);
  const int p = call.x->quant.bits, q = call.w->quant.bits;
  std::string name;
  if (plan.halo) {
    name = "conv_w" + std::to_string(q) + "a" + std::to_string(p) + "_halo8x8" +
           (call.geometry.stride_h == 2 ? "_s2" : "") + "_n" + std::to_string(plan.tn);
    if (call.has_epilogue) name += plan.halo_output == HaloOutput::kPackedPool ? "_fused_epilogue_pool" : "_fused_epilogue";
  } else {
    const bool fast = fast_planes(p, q) || (plan.config == kConv256x64K512 && p == 8 && q == 1);
    name = std::string(fast ? "" : "generic_") + "conv_w" + std::to_string(q) + "a" + std::to_string(p) + "_" +
           (plan.config >= 0 ? kTileConfigs[plan.config].name : "b64x64_k256") + "_split" + std::to_string(plan.split) +
           (plan.config >= 0 && plan.split > 1 ? "c" : "") + (plan.register_finish ? "_register_finish" : "");
    if (call.has_epilogue)
      name += plan.fused ? (plan.pool_fused ? "_fused_epilogue_pool" : "_fused_epilogue") : "_separate_epilogue";
  }
  if (call.w->tap_words) name += "_packed_taps";  // the same kernels, reading weights of packed taps
  return name;
}

void ConvRunner::set_outputs(const ConvCall& call, ConvKernelParams& prm) const {
  if (call.has_epilogue) {
    prm.ep = call.epilogue;
    prm.res = call.residual;
    if (!uses_table(call)) prm.ep.thresholds = nullptr;
  }
  if (call.y_packed) {
    prm.oq = output_quant(call.y_packed->quant);
    prm.out_planes = call.y_packed->planes_mem;
    prm.out_row_sums = call.y_packed->row_sums_mem;
    prm.out_rows_padded = call.y_packed->rows_padded;
    prm.out_words = call.y_packed->words;
  }
}

void ConvRunner::run_grouped(const ConvCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  require(!unpadded_rows(call), APNN_STATUS_INTERNAL_ERROR,
          "a tensor without 256-bit row padding reaches the grouped convolution");
  const size_t y_bytes = static_cast<size_t>(g.out_pixels() * g.out_channels) * sizeof(int32_t);
  if (!call.has_epilogue) return launch_grouped_conv(call, static_cast<int32_t*>(call.y_mem), stream);
  // The int32 results into the workspace, then the separate epilogue kernel.
  ConvKernelParams prm{};
  prm.y = workspace(y_bytes);
  prm.O = static_cast<int>(g.out_channels);
  prm.OH = static_cast<int>(g.out_h);
  prm.OW = static_cast<int>(g.out_w);
  set_outputs(call, prm);
  launch_grouped_conv(call, prm.y, stream);
  launch_epilogue(call, prm, stream);
}

void ConvRunner::run(const ConvCall& call, const GemmTarget& target, cudaStream_t stream) {
  if (call.geometry.groups > 1) return run_grouped(call, stream);
  const auto& g = call.geometry;
  const auto& x = *call.x;
  const auto& w = *call.w;
  const ConvPlan plan = this->plan(call, target);
  const int64_t tiles = static_cast<int64_t>(plan.row_tiles) * plan.col_tiles;
  require(tiles <= std::numeric_limits<int32_t>::max(), APNN_STATUS_UNSUPPORTED,
          "the convolution output has " + std::to_string(tiles) + " tiles, more than one launch takes (2^31 - 1); "
          "split the batch");
  require(w_taps_ok(call, plan), APNN_STATUS_INTERNAL_ERROR,
          "weights with packed taps need the tiled convolution kernel (sm_90, not APNN_CONV_CONFIG=legacy)");
  require(plan.halo || !unpadded_rows(call), APNN_STATUS_INTERNAL_ERROR,
          "a tensor without 256-bit row padding reaches a convolution kernel other than the halo kernel");

  ConvKernelParams prm{};
  prm.x_planes = x.planes_mem;
  prm.x_row_sums = x.row_sums_mem;
  prm.x_rows_padded = static_cast<int>(x.rows_padded);
  prm.cwords = static_cast<int>(x.words);
  prm.H = static_cast<int>(g.height);
  prm.W = static_cast<int>(g.width);
  prm.C = static_cast<int>(g.channels);
  prm.w_planes = w.planes_mem;
  prm.w_sat = w.tap_sat_mem;
  prm.w_rows_padded = static_cast<int>(w.rows_padded);
  prm.w_words = static_cast<int>(w.words);
  prm.O = static_cast<int>(g.out_channels);
  prm.KH = static_cast<int>(g.kh);
  prm.KW = static_cast<int>(g.kw);
  prm.stride_h = static_cast<int>(g.stride_h);
  prm.stride_w = static_cast<int>(g.stride_w);
  prm.pad_h = static_cast<int>(g.pad_h);
  prm.pad_w = static_cast<int>(g.pad_w);
  prm.OH = static_cast<int>(g.out_h);
  prm.OW = static_cast<int>(g.out_w);
  prm.M = static_cast<int>(plan.pool_fused ? 4 * g.pooled_pixels() : g.out_pixels());
  prm.pool_fused = plan.pool_fused ? 1 : 0;
  prm.register_finish = plan.register_finish ? 1 : 0;
  prm.PH = static_cast<int>(g.pooled_h);
  prm.PW = static_cast<int>(g.pooled_w);
  prm.p = x.quant.bits;
  prm.q = w.quant.bits;
  prm.tm = plan.tm;
  prm.tn = plan.tn;
  prm.col_tiles = plan.col_tiles;
  prm.tiles_per_tap = static_cast<int>(x.words / 8);
  prm.tap_words = static_cast<int>(w.tap_words);
  prm.k_tiles = plan.k_tiles;
  for (int i = 0; i < 8; ++i) {
    prm.cx[i] = i < prm.p ? plane_coefficient(i, prm.p, x.quant.encoding) : 0;
    prm.cw[i] = i < prm.q ? plane_coefficient(i, prm.q, w.quant.encoding) : 0;
  }
  prm.ox = real_offset(x.quant);
  prm.ow = real_offset(w.quant);
  set_outputs(call, prm);

  if (plan.halo) {
    prm.M = static_cast<int>(g.out_pixels());
    prm.pool_fused = 0;
    prm.mode = call.has_epilogue ? kConvOutFusedPacked : kConvOutInt32;
    if (call.has_epilogue) {
      prm.row_sum_ws = plan.col_tiles > 1 ? row_workspace(static_cast<size_t>(g.out_pixels()), stream) : nullptr;
    } else {
      prm.y = static_cast<int32_t*>(call.y_mem);
    }
    return launch_halo_conv(prm, plan.halo_output, target.multiprocessors, dependent_launch_, stream);
  }
  const dim3 grid(static_cast<unsigned>(tiles), 1, plan.split);
  const size_t y_bytes0 = static_cast<size_t>(g.out_pixels() * g.out_channels) * sizeof(int32_t);
  if (plan.config >= 0) {
    // Dependent launches where the GPU has them; the tiled kernel waits before reading.
    const bool dependent = dependent_launch_ && target.clusters;
    auto launch = [&](const ConvKernelParams& k) {
      kTiledLaunchers[plan.config](k.p, k.q, k, grid, dependent, stream);
    };
    if (!call.has_epilogue) {
      prm.mode = kConvOutInt32;
      prm.y = static_cast<int32_t*>(call.y_mem);
      return launch(prm);
    }
    if (plan.fused) {
      if (call.y_packed) {
        prm.mode = kConvOutFusedPacked;
        prm.row_sum_ws = row_workspace(static_cast<size_t>(g.out_pixels()), stream);
      } else {
        prm.mode = kConvOutFusedFloat;
        prm.y_float = static_cast<float*>(call.y_mem);
      }
      return launch(prm);
    }
    prm.mode = kConvOutInt32;
    prm.y = workspace(y_bytes0);
    launch(prm);
    launch_epilogue(call, prm, stream);
    return;
  }
  const size_t y_bytes = static_cast<size_t>(g.out_pixels() * g.out_channels) * sizeof(int32_t);
  if (!call.has_epilogue) {
    prm.mode = kConvOutInt32;
    prm.y = static_cast<int32_t*>(call.y_mem);
    if (plan.split > 1) APNN_CUDA_CHECK(cudaMemsetAsync(prm.y, 0, y_bytes, stream));
    launch_conv_any(prm.p, prm.q, prm, grid, stream);
    return;
  }
  if (plan.fused) {
    if (call.y_packed) {
      prm.mode = kConvOutFusedPacked;
      APNN_CUDA_CHECK(cudaMemsetAsync(prm.out_row_sums, 0, call.y_packed->rows_padded * sizeof(int32_t), stream));
    } else {
      prm.mode = kConvOutFusedFloat;
      prm.y_float = static_cast<float*>(call.y_mem);
    }
    launch_conv_any(prm.p, prm.q, prm, grid, stream);
    return;
  }
  // Separate epilogue: int32 results into the workspace, then the epilogue kernel.
  prm.mode = kConvOutInt32;
  prm.y = workspace(y_bytes);
  if (plan.split > 1) APNN_CUDA_CHECK(cudaMemsetAsync(prm.y, 0, y_bytes, stream));
  launch_conv_any(prm.p, prm.q, prm, grid, stream);

  launch_epilogue(call, prm, stream);
}

}  // namespace apnn
