// What the network's source files (network_graph.cc, network_weights.cc, network_plan.cc,
// network_run.cc) share: the graph's limits and small helpers. Internal to cuda/nn.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "common/backend.h"
#include "common/status.h"
#include "nn/network.h"
#include "nn/nn_types.h"

namespace apnn {
namespace net_detail {

constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int kMaxKernel = 15;
// Sub-batches: one convolution call's int32 results (output pixels x channels, the workspace of
// an epilogue that is not fused) stay within 2^29 values (2 GiB). Within that, a batch runs in
// one call per layer.
constexpr int64_t kMaxCallOutputs = int64_t{1} << 29;

inline std::string str(int64_t v) { return std::to_string(v); }

inline const char* kind_name(apnn_layer_kind_t k) {
  switch (k) {
    case APNN_LAYER_INPUT: return "input";
    case APNN_LAYER_CONV: return "conv";
    case APNN_LAYER_LINEAR: return "linear";
    case APNN_LAYER_POOL: return "pool";
    case APNN_LAYER_FLATTEN: return "flatten";
  }
  return "?";
}

inline std::string shape_str(int64_t h, int64_t w, int64_t c) { return str(h) + " x " + str(w) + " x " + str(c); }

inline size_t dtype_bytes(apnn_dtype_t d) { return d == APNN_DTYPE_INT8 || d == APNN_DTYPE_UINT8 ? 1 : 4; }

inline void check_dtype(apnn_dtype_t d, const char* what) {
  require_arg(d == APNN_DTYPE_INT8 || d == APNN_DTYPE_UINT8 || d == APNN_DTYPE_INT32 || d == APNN_DTYPE_FLOAT32,
              std::string(what) + ": dtype must be INT8, UINT8, INT32 or FLOAT32, got " + str(d));
}

inline int32_t load_int(const void* p, apnn_dtype_t d, int64_t i) {
  switch (d) {
    case APNN_DTYPE_INT8: return static_cast<const int8_t*>(p)[i];
    case APNN_DTYPE_UINT8: return static_cast<const uint8_t*>(p)[i];
    default: return static_cast<const int32_t*>(p)[i];
  }
}

inline PackedView view(const PackedMatrix& m) {
  PackedView v;
  v.rows = m.rows;
  v.cols = m.cols;
  v.rows_padded = m.rows_padded;
  v.words = m.words;
  v.batch = m.batch;
  v.height = m.height;
  v.width = m.width;
  v.quant = m.quant;
  v.planes = m.planes_mem;
  v.row_sums = m.row_sums_mem;
  return v;
}

inline bool finite(float v) { return std::isfinite(v); }

// The from-image form's K layout (FirstLayerCall): each kernel row's KW*C bytes padded to whole
// words.
struct ImageRowLayout {
  int row_bytes, row_words, k4;
};
inline ImageRowLayout image_row_layout(const NetLayer& l) {
  const int row_bytes = static_cast<int>(l.kw * l.in_c), row_words = (row_bytes + 3) / 4;
  return {row_bytes, row_words, static_cast<int>(l.kh) * row_words};
}

}  // namespace net_detail
}  // namespace apnn
