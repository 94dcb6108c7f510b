// The opaque handles of the convolution API (apnn.h): packed weights and epilogues.
#pragma once

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
};
