// The opaque handles of the convolution API (apnn.h): packed weights and epilogues.
#pragma once

#include <map>
#include <tuple>
#include <vector>

#include "common/objects.h"
#include "conv/conv_types.h"

struct apnn_conv_weights {
  apnn_context* ctx = nullptr;
  apnn::ConvWeights weights;
};

struct apnn_epilogue {
  apnn_context* ctx = nullptr;
  int64_t channels = 0;
  apnn::EpilogueParams params;  // scale / bias point into backend memory owned by this object
  std::vector<float> scale_host, bias_host;  // what they hold, for the threshold tables
  // Threshold tables (common/epilogue_thresholds.h) in backend memory, one per output (bits,
  // encoding, zero point) and packed residual (the same, or bits 0 for none), built on first
  // use; owned by this object.
  std::map<std::tuple<int, int, int, int, int, int>, int32_t*> threshold_tables;
};
