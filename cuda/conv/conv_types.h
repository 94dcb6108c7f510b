// Shapes and arguments of the convolution, shared by the C API and the backends.
#pragma once

#include <cstdint>

#include "apnn/apnn.h"
#include "common/epilogue.h"

namespace apnn {

struct PackedMatrix;

// Packed O x KH x KW x C weights (layout: apnn.h, "Convolution weights").
struct ConvWeights {
  int64_t out_channels = 0, kh = 0, kw = 0, channels = 0;
  int64_t rows_padded = 0;     // round_up(O, 128)
  int64_t channel_words = 0;   // Cpad / 32: words of one tap
  int64_t words = 0;           // kh * kw * channel_words: words of one row of a plane
  // 0: the layout above. Else (networks on CUDA, C a multiple of 64 below 256) the taps are packed
  // back to back, tap_words = C / 32 words each, and only the row is padded to 256 bits:
  // words = round_up(kh * kw * C, 256) / 32, so narrow layers multiply no padding bits.
  int64_t tap_words = 0;
  apnn_quant_t quant{};
  uint32_t* planes_mem = nullptr;
  // Per output channel, the (kh+1) x (kw+1) summed-area table of per-tap plane-part sums:
  // sat[o][i][j] = sum over taps (a < i, b < j) of sum_c Pw[o][a][b][c].
  int32_t* tap_sat_mem = nullptr;

  int64_t sat_stride() const { return (kh + 1) * (kw + 1); }
  int64_t total_words() const { return quant.bits * rows_padded * words; }
};

// Geometry of one convolution, all derived from validated arguments.
struct ConvGeometry {
  int64_t batch = 0, height = 0, width = 0, channels = 0;  // input N, H, W, C
  int64_t out_channels = 0, kh = 0, kw = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t out_h = 0, out_w = 0;        // before pooling
  int64_t pooled_h = 0, pooled_w = 0;  // after pooling (= out_h, out_w without)
  int64_t groups = 1;                  // > 1: grouped (apnn.h, "Grouped convolution")

  int64_t group_channels() const { return channels / groups; }  // C/G: the weights' C

  int64_t out_pixels() const { return batch * out_h * out_w; }
  int64_t pooled_pixels() const { return batch * pooled_h * pooled_w; }
};

// One call of the backend's conv2d. Exactly one of y_mem / y_packed is set.
struct ConvCall {
  const PackedMatrix* x = nullptr;
  const ConvWeights* w = nullptr;
  ConvGeometry geometry;
  bool has_epilogue = false;
  EpilogueParams epilogue;       // valid when has_epilogue
  ResidualParams residual;       // int32_values / planes null when none
  void* y_mem = nullptr;         // int32 (no epilogue) or float32 output, backend memory
  PackedMatrix* y_packed = nullptr;
};

// A pinned convolution choice (apnn_context_set_conv_override).
struct ConvOverride {
  int split_k = 0;   // 0: automatic
  bool fuse = true;  // false: always the separate epilogue kernel
};

}  // namespace apnn
