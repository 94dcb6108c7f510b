// Arguments of the implicit-GEMM convolution kernel and of the separate epilogue kernel.
#pragma once

#include <cstdint>

#include "common/epilogue.h"

namespace apnn {

// What the convolution kernel does with its int32 results.
enum ConvOutputMode : int {
  kConvOutInt32 = 0,         // store (or atomically add, with split-K) into `y`
  kConvOutFusedFloat = 1,    // epilogue in the kernel, float32 into `y_float`
  kConvOutFusedPacked = 2,   // epilogue in the kernel, codes into the packed output
};

struct ConvKernelParams {
  // Activations: p planes of x_rows_padded pixel rows, `cwords` words per row.
  const uint32_t* x_planes;
  const int32_t* x_row_sums;
  int x_rows_padded, cwords;
  int H, W, C;
  // Weights: q planes of w_rows_padded rows of KH*KW*cwords words; per-row summed-area tables.
  const uint32_t* w_planes;
  const int32_t* w_sat;
  int w_rows_padded, w_words;
  int O, KH, KW;
  int stride_h, stride_w, pad_h, pad_w, OH, OW;
  int M;                  // N * OH * OW output pixels
  int p, q, tm, tn;       // planes; output pixels / channels per block
  // Tiles run along grid x, column tiles fastest (blocks of one row tile share its activations
  // in L2): blockIdx.x = row tile * col_tiles + column tile. Grid y would stop at 65,535 row
  // tiles, which batch-256 networks exceed.
  int col_tiles;
  int tiles_per_tap, k_tiles;
  int tap_words;          // ConvWeights::tap_words (tiled kernel with kTapPacked)
  // Tiled kernel, packed output: a 2x2 / 2 max pool fused into the finish (conv_pixel's order;
  // M is then 4 x PH x PW x N and the output rows are the pooled pixels).
  int pool_fused, PH, PW;
  int32_t cx[8], cw[8];   // plane coefficients
  int64_t ox, ow;         // real offsets (value_offset - zero_point)

  int mode;
  int32_t* y;
  float* y_float;
  EpilogueParams ep;
  ResidualParams res;
  OutputQuant oq;
  uint32_t* out_planes;
  int32_t* out_row_sums;
  int64_t out_rows_padded, out_words;
  // Tiled kernel, packed output over several column tiles: one zeroed 64-bit word per output
  // row, where the blocks add their parts and the last one writes out_row_sums and zeroes the
  // word (row_sum_parts.cuh). With one column tile each warp writes its pixels' sums directly.
  unsigned long long* row_sum_ws;
  // Tiled kernel on sm_90a: finish from the wgmma accumulators (conv_register_finish.cuh).
  // Contract (set by ConvRunner::plan alone; the kernel does not check it again): one K split,
  // activations without offset (ox == 0), and an int32 output or a packed one with a threshold
  // table, with a packed residual only where the table has a part per residual code.
  int register_finish;
};

// The epilogue kernel reads int32 conv results (M x O) and writes pooled outputs.
struct EpilogueKernelParams {
  const int32_t* y;  // M x O
  int O, OH, OW, PH, PW, pooled_pixels;
  EpilogueParams ep;
  ResidualParams res;
  OutputQuant oq;
  float* y_float;    // or:
  uint32_t* out_planes;
  int32_t* out_row_sums;
  int64_t out_rows_padded, out_words;
};

}  // namespace apnn
