// The network graph, its validation, planning and execution (network.h, apnn.h "Networks").
#include "nn/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/epilogue.h"
#include "common/epilogue_thresholds.h"
#include "common/quant.h"
#include "common/status.h"
#include "conv/conv_weights.h"

namespace apnn {
namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int kMaxKernel = 15;
// Sub-batches: one convolution call's int32 results (output pixels x channels, the workspace of
// an epilogue that is not fused) stay within 2^29 values (2 GiB). Within that, a batch runs in
// one call per layer.
constexpr int64_t kMaxCallOutputs = int64_t{1} << 29;

std::string str(int64_t v) { return std::to_string(v); }

const char* kind_name(apnn_layer_kind_t k) {
  switch (k) {
    case APNN_LAYER_INPUT: return "input";
    case APNN_LAYER_CONV: return "conv";
    case APNN_LAYER_LINEAR: return "linear";
    case APNN_LAYER_POOL: return "pool";
    case APNN_LAYER_FLATTEN: return "flatten";
  }
  return "?";
}

std::string shape_str(int64_t h, int64_t w, int64_t c) { return str(h) + " x " + str(w) + " x " + str(c); }

size_t dtype_bytes(apnn_dtype_t d) { return d == APNN_DTYPE_INT8 || d == APNN_DTYPE_UINT8 ? 1 : 4; }

void check_dtype(apnn_dtype_t d, const char* what) {
  require_arg(d == APNN_DTYPE_INT8 || d == APNN_DTYPE_UINT8 || d == APNN_DTYPE_INT32 || d == APNN_DTYPE_FLOAT32,
              std::string(what) + ": dtype must be INT8, UINT8, INT32 or FLOAT32, got " + str(d));
}

int32_t load_int(const void* p, apnn_dtype_t d, int64_t i) {
  switch (d) {
    case APNN_DTYPE_INT8: return static_cast<const int8_t*>(p)[i];
    case APNN_DTYPE_UINT8: return static_cast<const uint8_t*>(p)[i];
    default: return static_cast<const int32_t*>(p)[i];
  }
}

PackedView view(const PackedMatrix& m) {
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

bool finite(float v) { return std::isfinite(v); }

}  // namespace

int64_t NetLayer::macs() const {
  if (!is_weighted()) return 0;
  return conv_h * conv_w * desc.out_channels * kh * kw * in_c;
}

Network::Network(apnn_backend_t kind, const apnn_options_t& options, const apnn_network_input_desc_t& in)
    : options_(options) {
  const int64_t dims[] = {in.height, in.width, in.channels};
  for (int64_t d : dims) require_arg(d >= 1 && d <= kMaxDim, "input: height, width and channels must be in 1.." +
                                                                   str(kMaxDim) + ", got " + shape_str(dims[0], dims[1], dims[2]));
  NetLayer l;
  l.kind = APNN_LAYER_INPUT;
  l.h = in.height;
  l.w = in.width;
  l.c = in.channels;
  l.out_quant = in.quant;
  if (l.out_quant.bits == 0) l.out_quant = apnn_quant_t{8, APNN_ENCODING_UNSIGNED, 0};
  validate_quant(&l.out_quant, "input quant");
  input_scale_ = in.scale == 0.0f ? 1.0f : in.scale;
  require_arg(finite(input_scale_) && input_scale_ > 0.0f, "input scale must be a finite number > 0");
  kind_ = kind;
  backend_ = kind == APNN_BACKEND_CUDA ? make_cuda_backend() : make_host_backend();
  backend_->set_options(options_);
  layers_.push_back(l);
}

Network::~Network() {
  release_plan();
  for (auto& l : layers_) release_weights(l);
}

std::string Network::name(int id) const { return "layer " + str(id) + " (" + kind_name(layers_[id].kind) + ")"; }

const NetLayer& Network::layer(int id, const char* role) const {
  require_arg(id >= 0 && id < layer_count(),
              std::string(role) + " " + str(id) + " is not a layer id (0.." + str(layer_count() - 1) + ")");
  return layers_[id];
}

// A layer that another reads as input (conv / pool / flatten) or residual must hold packed codes.
void Network::check_readable(int id, int reader, const char* role) const {
  const NetLayer& l = layers_[id];
  require_arg(l.output == APNN_LAYER_OUTPUT_PACKED,
              "layer " + str(reader) + " reads " + name(id) + " as its " + role + ", but that layer outputs " +
                  (l.output == APNN_LAYER_OUTPUT_FLOAT32 ? "float32" : "int32") +
                  "; only packed outputs can be read by other layers (float / int32 only for the last layer)");
}

int Network::add_weighted(const apnn_layer_desc_t& d, bool linear) {
  release_plan();  // a new layer invalidates any plan
  const int id = layer_count();
  const NetLayer& in = layer(d.input, "input");
  check_readable(d.input, id, "input");
  NetLayer l;
  l.kind = linear ? APNN_LAYER_LINEAR : APNN_LAYER_CONV;
  l.input = d.input;
  l.desc = d;
  auto& desc = l.desc;
  require_arg(desc.out_channels >= 1 && desc.out_channels <= kMaxDim,
              "out_channels must be in 1.." + str(kMaxDim) + ", got " + str(desc.out_channels));
  validate_quant(&desc.weight_quant, "weight_quant");

  if (linear) {
    // A linear layer is a convolution whose kernel covers its whole (real) input tensor.
    l.source = d.input;
    int64_t h = in.h, w = in.w, c = in.c;
    if (in.kind == APNN_LAYER_FLATTEN || in.is_virtual()) {
      l.source = in.input;
      l.over_avg_pool = in.kind == APNN_LAYER_POOL;
      const NetLayer& src = layers_[l.source];
      h = src.h;
      w = src.w;
      c = src.c;
    }
    require(h <= kMaxKernel && w <= kMaxKernel, APNN_STATUS_UNSUPPORTED,
            "linear layer " + str(id) + " reads a " + shape_str(h, w, c) +
                " tensor; it runs as a convolution with a kernel over the whole input, so H and W must be at "
                "most 15: pool first");
    require_arg(desc.pool == APNN_POOL_NONE, "a linear layer cannot pool (its output is 1 x 1)");
    require_arg(desc.groups <= 1, "a linear layer has no groups");
    desc.groups = 1;
    l.kh = h;
    l.kw = w;
    l.in_c = c;
    desc.stride_h = desc.stride_w = 1;
    desc.pad_h = desc.pad_w = 0;
    desc.kernel_h = static_cast<int32_t>(h);
    desc.kernel_w = static_cast<int32_t>(w);
  } else {
    require_arg(!in.is_virtual(), "conv layer " + str(id) + " reads " + name(d.input) +
                                      ", which only a linear layer may read (unsupported layer order)");
    l.source = d.input;
    require_arg(desc.kernel_h >= 1 && desc.kernel_h <= kMaxKernel && desc.kernel_w >= 1 && desc.kernel_w <= kMaxKernel,
                "kernel must be 1..15 x 1..15, got " + str(desc.kernel_h) + " x " + str(desc.kernel_w));
    if (desc.stride_h == 0) desc.stride_h = 1;
    if (desc.stride_w == 0) desc.stride_w = 1;
    require_arg(desc.stride_h >= 1 && desc.stride_h <= 16 && desc.stride_w >= 1 && desc.stride_w <= 16,
                "stride must be in 1..16, got " + str(desc.stride_h) + " x " + str(desc.stride_w));
    require_arg(desc.pad_h >= 0 && desc.pad_h < desc.kernel_h && desc.pad_w >= 0 && desc.pad_w < desc.kernel_w,
                "padding must be in 0..kernel-1, got " + str(desc.pad_h) + " x " + str(desc.pad_w));
    l.kh = desc.kernel_h;
    l.kw = desc.kernel_w;
    if (desc.groups == 0) desc.groups = 1;
    require_arg(desc.groups >= 1 && in.c % desc.groups == 0 && desc.out_channels % desc.groups == 0,
                "layer " + str(id) + ": groups = " + str(desc.groups) + " must divide the " + str(in.c) +
                    " input and " + str(desc.out_channels) + " output channels");
    require_verified_on_cuda(desc.groups == 1, "grouped convolution");
    l.in_c = in.c / desc.groups;  // the weights' channels: one group's
  }
  const NetLayer& src = layers_[l.source];
  require_arg(src.h + 2 * desc.pad_h >= l.kh && src.w + 2 * desc.pad_w >= l.kw,
              "layer " + str(id) + ": the " + str(l.kh) + " x " + str(l.kw) + " kernel does not fit the padded " +
                  shape_str(src.h, src.w, src.c) + " input of " + name(l.source) + " (shape mismatch)");
  l.conv_h = (src.h + 2 * desc.pad_h - l.kh) / desc.stride_h + 1;
  l.conv_w = (src.w + 2 * desc.pad_w - l.kw) / desc.stride_w + 1;
  l.h = l.conv_h;
  l.w = l.conv_w;
  l.c = desc.out_channels;
  require(l.kh * l.kw * l.in_c * 256 <= std::numeric_limits<int32_t>::max(), APNN_STATUS_UNSUPPORTED,
          "layer " + str(id) + ": KH*KW*C = " + str(l.kh * l.kw * l.in_c) + " is too large for the int32 sums");
  const double bound = static_cast<double>(l.kh * l.kw * l.in_c) * max_abs_real(src.out_quant) *
                       max_abs_real(desc.weight_quant);
  require(bound <= std::numeric_limits<int32_t>::max(), APNN_STATUS_UNSUPPORTED,
          "layer " + str(id) + ": KH*KW*C * max|x| * max|w| = " + str(static_cast<int64_t>(bound)) +
              " could overflow int32");
  l.y_bound = static_cast<int64_t>(bound);

  // The epilogue.
  l.output = desc.output;
  require_arg(desc.output >= APNN_LAYER_OUTPUT_PACKED && desc.output <= APNN_LAYER_OUTPUT_INT32,
              "unknown output kind " + str(desc.output));
  require_arg(desc.activation >= APNN_ACTIVATION_NONE && desc.activation <= APNN_ACTIVATION_CLIP,
              "unknown activation " + str(desc.activation));
  if (desc.activation == APNN_ACTIVATION_CLIP)
    require_arg(finite(desc.clip_lo) && finite(desc.clip_hi) && desc.clip_lo <= desc.clip_hi,
                "clip bounds must be finite with clip_lo <= clip_hi");
  require_arg(desc.pool >= APNN_POOL_NONE && desc.pool <= APNN_POOL_AVG, "unknown pool " + str(desc.pool));
  if (desc.pool != APNN_POOL_NONE) {
    require_arg(desc.pool_size == 2 || desc.pool_size == 3, "pool_size must be 2 or 3, got " + str(desc.pool_size));
    if (desc.pool_stride == 0) desc.pool_stride = desc.pool_size;
    require_arg(desc.pool_stride >= 1 && desc.pool_stride <= desc.pool_size,
                "pool_stride must be in 1..pool_size, got " + str(desc.pool_stride));
    require_arg(l.conv_h >= desc.pool_size && l.conv_w >= desc.pool_size,
                "the pooling window does not fit the " + str(l.conv_h) + " x " + str(l.conv_w) + " output");
    l.h = (l.conv_h - desc.pool_size) / desc.pool_stride + 1;
    l.w = (l.conv_w - desc.pool_size) / desc.pool_stride + 1;
  }
  if (desc.residual != 0) {
    const NetLayer& r = layer(desc.residual, "residual");
    require_arg(desc.residual < id, "residual must be an earlier layer");
    check_readable(desc.residual, id, "residual");
    require_arg(!r.is_virtual(), "the residual of layer " + str(id) + " is " + name(desc.residual) +
                                     ", which has no tensor of its own (unsupported layer order)");
    require_arg(r.h == l.conv_h && r.w == l.conv_w && r.c == l.c,
                "layer " + str(id) + ": residual " + name(desc.residual) + " has shape " + shape_str(r.h, r.w, r.c) +
                    ", the output before pooling is " + shape_str(l.conv_h, l.conv_w, l.c) + " (shape mismatch)");
    require_arg(finite(desc.residual_scale), "residual_scale is not finite");
  }
  if (desc.output == APNN_LAYER_OUTPUT_PACKED) {
    validate_quant(&desc.out_quant, "out_quant");
    require_arg(finite(desc.out_scale) && desc.out_scale > 0.0f, "out_scale must be a finite number > 0");
    l.out_quant = desc.out_quant;
  } else if (desc.output == APNN_LAYER_OUTPUT_INT32) {
    require_arg(desc.activation == APNN_ACTIVATION_NONE && desc.pool == APNN_POOL_NONE && desc.residual == 0 &&
                    !l.over_avg_pool,
                "an INT32 output is the raw accumulation: no activation, pooling, residual or average pool");
  }
  layers_[d.input].readers.push_back(id);
  if (desc.residual != 0) layers_[desc.residual].readers.push_back(id);
  layers_.push_back(l);
  return id;
}

int Network::add_pool(int input, apnn_pool_t pool, int size, int stride, int pad) {
  release_plan();
  const int id = layer_count();
  const NetLayer& in = layer(input, "input");
  check_readable(input, id, "input");
  require_arg(!in.is_virtual(), "pool layer " + str(id) + " reads " + name(input) +
                                    ", which only a linear layer may read (unsupported layer order)");
  NetLayer l;
  l.kind = APNN_LAYER_POOL;
  l.input = input;
  l.pool = pool;
  l.c = in.c;
  l.out_quant = in.out_quant;
  if (pool == APNN_POOL_AVG) {
    require(size == 0, APNN_STATUS_UNSUPPORTED,
            "only the global average pool (size 0) is supported, and it must feed linear layers");
    l.h = l.w = 1;
  } else {
    require_arg(pool == APNN_POOL_MAX, "pool must be MAX or AVG, got " + str(pool));
    if (stride == 0) stride = size;
    require_arg(size >= 2 && size <= kMaxKernel, "max pool size must be in 2..15, got " + str(size));
    require_arg(stride >= 1 && stride <= 16, "max pool stride must be in 1..16, got " + str(stride));
    require_arg(pad >= 0 && 2 * pad <= size, "max pool padding must be in 0..size/2, got " + str(pad));
    require_arg(in.h + 2 * pad >= size && in.w + 2 * pad >= size,
                "the " + str(size) + " x " + str(size) + " pool window does not fit the " +
                    shape_str(in.h, in.w, in.c) + " input (shape mismatch)");
    l.pool_size = size;
    l.pool_stride = stride;
    l.pool_pad = pad;
    l.h = (in.h + 2 * pad - size) / stride + 1;
    l.w = (in.w + 2 * pad - size) / stride + 1;
  }
  layers_[input].readers.push_back(id);
  layers_.push_back(l);
  return id;
}

int Network::add_flatten(int input) {
  release_plan();
  const int id = layer_count();
  const NetLayer& in = layer(input, "input");
  check_readable(input, id, "input");
  require_arg(!in.is_virtual(), "flatten layer " + str(id) + " reads " + name(input) +
                                    ", which only a linear layer may read (unsupported layer order)");
  NetLayer l;
  l.kind = APNN_LAYER_FLATTEN;
  l.input = input;
  l.h = l.w = 1;
  l.c = in.h * in.w * in.c;
  l.out_quant = in.out_quant;
  layers_[input].readers.push_back(id);
  layers_.push_back(l);
  return id;
}

void Network::release_weights(NetLayer& l) noexcept {
  backend_->release(l.weights.planes_mem);
  backend_->release(l.weights.tap_sat_mem);
  backend_->release(l.scale_mem);
  backend_->release(l.bias_mem);
  backend_->release(l.threshold_mem);
  backend_->release(l.image_weights_mem);
  backend_->release(l.tap_weights_mem);
  l.image_weights_mem = nullptr;
  l.tap_weights_mem = nullptr;
  l.from_image = false;
  l.weights.planes_mem = nullptr;
  l.weights.tap_sat_mem = nullptr;
  l.scale_mem = l.bias_mem = nullptr;
  l.threshold_mem = nullptr;
  l.threshold_levels = 0;
  l.threshold_residual_codes = 0;
  l.thresholds_given = false;
  l.has_weights = false;
}

void Network::set_weights(int id, const apnn_layer_weights_t& wt) {
  const NetLayer& cl = layer(id, "layer");
  require_arg(cl.is_weighted(), name(id) + " has no weights");
  require_arg(wt.values != nullptr, "weights: values is NULL");
  check_dtype(wt.dtype, "weights");
  NetLayer& l = layers_[id];
  const int64_t o = l.desc.out_channels;
  const apnn_quant_t& q = l.desc.weight_quant;
  if (wt.thresholds != nullptr) {
    require_verified_on_cuda(false, "threshold epilogues (apnn.from_qonnx)");
    require_arg(l.output == APNN_LAYER_OUTPUT_PACKED,
                name(id) + ": thresholds give packed codes; the layer's output is not PACKED");
    require_arg(l.desc.pool != APNN_POOL_AVG, name(id) + ": thresholds cannot be combined with an AVG pool");
    require_arg(l.y_bound < std::numeric_limits<int32_t>::max(),
                name(id) + ": its results may reach the int32 limit, where thresholds cannot be compared");
    require_arg(l.desc.residual == 0 || layers_[l.desc.residual].out_quant.bits <= 8,
                name(id) + ": the residual has more than 8 bits");
  } else {
    require_arg(wt.descending == nullptr, name(id) + ": descending is given without thresholds");
  }
  // Given: O x KH x KW x C, except O x C for a linear layer over a global average pool.
  const int64_t taps = l.over_avg_pool ? 1 : l.kh * l.kw;
  const int64_t given = taps * l.in_c;
  std::vector<int32_t> codes(static_cast<size_t>(o * given));
  if (wt.dtype == APNN_DTYPE_FLOAT32) {
    require_arg(finite(wt.weight_scale) && wt.weight_scale > 0.0f, "weight_scale must be a finite number > 0");
    const OutputQuant oq = output_quant(q);
    const float* v = static_cast<const float*>(wt.values);
    for (size_t i = 0; i < codes.size(); ++i) {
      require_arg(finite(v[i]), "weights: value " + str(static_cast<int64_t>(i)) + " is not finite");
      codes[i] = requantize(oq, wt.weight_scale, v[i]);
    }
  } else {
    for (size_t i = 0; i < codes.size(); ++i) {
      const int32_t c = load_int(wt.values, wt.dtype, static_cast<int64_t>(i));
      require_arg(code_valid(c, q.bits, q.encoding),
                  name(id) + ": weight code " + str(c) + " at (" + str(static_cast<int64_t>(i) / given) + ", " +
                      str(static_cast<int64_t>(i) % given) + ") is outside " + str(code_min(q.bits, q.encoding)) +
                      ".." + str(code_max(q.bits, q.encoding)) + " for " + str(q.bits) + "-bit " +
                      encoding_name(q.encoding) + " codes");
      codes[i] = c;
    }
  }
  if (l.over_avg_pool && l.kh * l.kw > 1) {
    // sum over the pooled window = the O x C weights repeated at every tap.
    std::vector<int32_t> full(static_cast<size_t>(o * l.kh * l.kw * l.in_c));
    for (int64_t r = 0; r < o; ++r)
      for (int64_t t = 0; t < l.kh * l.kw; ++t)
        std::copy_n(codes.begin() + r * l.in_c, l.in_c, full.begin() + (r * l.kh * l.kw + t) * l.in_c);
    codes.swap(full);
  }
  std::vector<float> scale(static_cast<size_t>(o), 1.0f), bias(static_cast<size_t>(o), 0.0f);
  for (int64_t i = 0; i < o; ++i) {
    if (wt.scale) scale[i] = wt.scale[i];
    if (wt.bias) bias[i] = wt.bias[i];
    require_arg(finite(scale[i]) && finite(bias[i]), name(id) + ": scale / bias entry " + str(i) + " is not finite");
    if (l.over_avg_pool) scale[i] = scale[i] / static_cast<float>(l.kh * l.kw);  // fl(scale / (H*W))
  }

  release_weights(l);
  try {
    pack_weights(l, codes, l.im2col);
    l.scale_mem = static_cast<float*>(backend_->allocate(scale.size() * sizeof(float)));
    l.bias_mem = static_cast<float*>(backend_->allocate(bias.size() * sizeof(float)));
    backend_->write(l.scale_mem, scale.data(), scale.size() * sizeof(float));
    backend_->write(l.bias_mem, bias.data(), bias.size() * sizeof(float));
    // The caller's thresholds are the epilogue; otherwise the CUDA kernels compare against a
    // table of the float steps instead of running them.
    const EpilogueParams e = layer_epilogue(l);
    const OutputQuant oq = output_quant(l.out_quant);
    const apnn_quant_t* residual = l.desc.residual != 0 ? &layers_[l.desc.residual].out_quant : nullptr;
    std::vector<int32_t> table;
    if (wt.thresholds != nullptr) {
      table = import_threshold_table(wt.thresholds, wt.descending, o, oq, residual);
    } else if (kind_ == APNN_BACKEND_CUDA && l.output == APNN_LAYER_OUTPUT_PACKED &&
               thresholds_apply(e, oq, residual ? residual->bits : 0, l.y_bound)) {
      table = build_threshold_table(scale.data(), bias.data(), o, e, oq, residual);
    }
    if (!table.empty()) {
      l.threshold_mem = static_cast<int32_t*>(backend_->allocate(table.size() * sizeof(int32_t)));
      backend_->write(l.threshold_mem, table.data(), table.size() * sizeof(int32_t));
      l.threshold_levels = threshold_levels(oq);
      l.threshold_residual_codes = residual ? 1 << residual->bits : 0;
      l.thresholds_given = wt.thresholds != nullptr;
    }
  } catch (...) {
    release_weights(l);
    throw;
  }
  l.input_codes.clear();
  if (l.kind == APNN_LAYER_CONV && l.source == 0) l.input_codes = std::move(codes);
  l.has_weights = true;
  // A planned graph refers to the old weights' memory: plan again.
  if (batch_ > 0) plan(batch_);
}

// Packs O x KH x KW x C codes into l.weights (replacing planes and tables there), as that
// kernel or, for the im2col form, as one 1 x 1 kernel over KH*KW*C channels.
void Network::pack_weights(NetLayer& l, const std::vector<int32_t>& codes, bool im2col) {
  ConvWeights w;
  w.out_channels = l.desc.out_channels;
  w.kh = im2col ? 1 : l.kh;
  w.kw = im2col ? 1 : l.kw;
  w.channels = im2col ? l.kh * l.kw * l.in_c : l.in_c;
  w.rows_padded = round_up(w.out_channels, kRowAlign);
  w.channel_words = round_up(w.channels, kKAlignBits) / 32;
  w.words = w.kh * w.kw * w.channel_words;
  w.quant = l.desc.weight_quant;
  if (!im2col && wants_packed_taps(l)) {  // taps back to back, the row padded once
    w.tap_words = l.in_c / 32;
    w.words = round_up(l.kh * l.kw * l.in_c, kKAlignBits) / 32;
  }
  std::vector<uint32_t> planes;
  std::vector<int32_t> sat;
  pack_conv_weights_host(codes.data(), APNN_DTYPE_INT32, w, planes, sat);
  w.planes_mem = static_cast<uint32_t*>(backend_->allocate(planes.size() * sizeof(uint32_t)));
  try {
    w.tap_sat_mem = static_cast<int32_t*>(backend_->allocate(sat.size() * sizeof(int32_t)));
  } catch (...) {
    backend_->release(w.planes_mem);
    throw;
  }
  backend_->release(l.weights.planes_mem);
  backend_->release(l.weights.tap_sat_mem);
  l.weights = w;
  l.im2col = im2col;
  backend_->write(w.planes_mem, planes.data(), planes.size() * sizeof(uint32_t));
  backend_->write(w.tap_sat_mem, sat.data(), sat.size() * sizeof(int32_t));
}

// A layer over 64, 128 or 192 channels (padded to 256 bits per tap in the plain layout) keeps
// its taps packed back to back where the backend's convolution takes that (CUDA, tiled
// kernels): 4x / 2x / 1.33x fewer K bits. The network_pack_taps option 0 turns it off (tests).
bool Network::wants_packed_taps(const NetLayer& l) const {
  if (!l.is_weighted() || l.source == 0 || l.desc.groups > 1 || l.in_c % 64 != 0 || l.in_c >= kKAlignBits || l.kh * l.kw < 2) return false;
  if (options_.network_pack_taps == 0) return false;
  return backend_->conv_tap_packing();
}

// A convolution reading the network input runs as an im2col GEMM when that packs at least 2x
// fewer K bits (a narrow input: C = 3 pads to 256 bits per tap, KH*KW*C pads once), the input
// has no other reader, and its padding code 0 is the real value 0 (real_offset 0).
// The network_im2col option 0 turns it off (tests compare both forms).
bool Network::wants_im2col(int id) const {
  const NetLayer& l = layers_[id];
  const NetLayer& in = layers_[0];
  if (l.kind != APNN_LAYER_CONV || l.source != 0 || in.readers.size() != 1 || l.desc.groups > 1) return false;
  if (real_offset(in.out_quant) != 0) return false;
  if (options_.network_im2col == 0) return false;
  const int64_t direct_bits = l.kh * l.kw * round_up(l.in_c, kKAlignBits);
  const int64_t im2col_bits = round_up(l.kh * l.kw * l.in_c, kKAlignBits);
  return direct_bits >= 2 * im2col_bits;
}

// The from-image form's K layout (FirstLayerCall): each kernel row's KW*C bytes padded to whole
// words.
struct ImageRowLayout {
  int row_bytes, row_words, k4;
};
ImageRowLayout image_row_layout(const NetLayer& l) {
  const int row_bytes = static_cast<int>(l.kw * l.in_c), row_words = (row_bytes + 3) / 4;
  return {row_bytes, row_words, static_cast<int>(l.kh) * row_words};
}

// The im2col layer runs straight from the image (CUDA) when its epilogue has a threshold table
// (packed output of at most 2 bits, no residual), it pools nothing, its padded K and its weights
// fit the kernel, and every weight's real value fits int8. The network_from_image option 0 turns it off
// (tests compare both forms).
bool Network::wants_from_image(int id) const {
  const NetLayer& l = layers_[id];
  if (kind_ != APNN_BACKEND_CUDA || !wants_im2col(id)) return false;
  if (options_.network_from_image == 0) return false;
  if (l.output != APNN_LAYER_OUTPUT_PACKED || l.desc.residual != 0 || l.desc.pool != APNN_POOL_NONE ||
      l.pooled_by >= 0 || l.threshold_mem == nullptr || l.out_quant.bits > 2)
    return false;
  const int k4 = image_row_layout(l).k4;
  if (4 * k4 > kFirstLayerMaxK ||
      first_layer_smem_bytes(k4, static_cast<int>(l.desc.out_channels)) > kFirstLayerMaxSmem)
    return false;
  const int32_t zp = l.desc.weight_quant.zero_point;
  for (int32_t code : l.input_codes)
    if (code - zp < -128 || code - zp > 127) return false;
  return true;
}

// Weights of the from-image form: real values (code - zero point) as int8, four per word
// along K with each kernel row padded to whole words, in the kernel's fragment order
// (FirstLayerCall, first_layer_weight_index).
void Network::pack_image_weights(NetLayer& l) {
  const int64_t o = l.desc.out_channels, k = l.kh * l.kw * l.in_c;
  const ImageRowLayout layout = image_row_layout(l);
  const int64_t row_bytes = layout.row_bytes, row_words = layout.row_words, k4 = layout.k4;
  const int32_t zp = l.desc.weight_quant.zero_point;
  std::vector<int32_t> words(
      static_cast<size_t>(first_layer_weight_words(static_cast<int>(k4), static_cast<int>(o))), 0);
  for (int64_t r = 0; r < o; ++r)
    for (int64_t i = 0; i < k; ++i) {
      const int64_t dh = i / row_bytes, j = i - dh * row_bytes;
      const uint32_t byte = static_cast<uint8_t>(static_cast<int8_t>(l.input_codes[r * k + i] - zp));
      const int64_t at = first_layer_weight_index(static_cast<int>(dh * row_words + j / 4), static_cast<int>(r),
                                                  static_cast<int>(k4));
      words[at] |= static_cast<int32_t>(byte << (8 * (j % 4)));
    }
  backend_->release(l.image_weights_mem);
  l.image_weights_mem = static_cast<int32_t*>(backend_->allocate(words.size() * sizeof(int32_t)));
  backend_->write(l.image_weights_mem, words.data(), words.size() * sizeof(int32_t));

  // The Hopper kernel's form of the same bytes, where it fits: each K step's two tap groups
  // (first_layer_tap_unit), zero past the kernel's rows and taps.
  backend_->release(l.tap_weights_mem);
  l.tap_weights_mem = nullptr;
  const int kh = static_cast<int>(l.kh), kw = static_cast<int>(l.kw), in_c = static_cast<int>(l.in_c);
  if (!first_layer_taps_fit(kh, kw, l.desc.stride_h, l.desc.stride_w, in_c, static_cast<int>(o))) return;
  std::vector<uint8_t> taps(static_cast<size_t>(first_layer_tap_weight_bytes(kh, kw)), 0);
  for (int step = 0; step < first_layer_tap_steps(kh, kw); ++step)
    for (int half = 0; half < 2; ++half) {
      int dh, group;
      first_layer_tap_unit(kh, kw, step, half, dh, group);
      if (dh >= kh) continue;  // an odd pair's row past the kernel
      for (int t = 0; t < kTapGroupTaps && kTapGroupTaps * group + t < kw; ++t) {
        const int j = kTapGroupTaps * group + t;
        for (int r = 0; r < static_cast<int>(o); ++r)
          for (int c = 0; c < in_c; ++c)
            taps[static_cast<size_t>(first_layer_tap_weight_offset(step, half, r) + t * 4 + c)] = static_cast<uint8_t>(
                static_cast<int8_t>(l.input_codes[r * k + (dh * kw + j) * in_c + c] - zp));
      }
    }
  l.tap_weights_mem = static_cast<uint8_t*>(backend_->allocate(taps.size()));
  backend_->write(l.tap_weights_mem, taps.data(), taps.size());
}

FirstLayerCall Network::first_layer_call(int id, int chunk, const InputPackCall& input) const {
  const NetLayer& l = layers_[id];
  FirstLayerCall c;
  c.input = input;
  c.weights = l.image_weights_mem;
  c.out_channels = static_cast<int>(l.desc.out_channels);
  c.out_channels_padded = static_cast<int>(round_up(l.desc.out_channels, kFirstLayerChannels));
  const ImageRowLayout layout = image_row_layout(l);
  c.row_bytes = layout.row_bytes;
  c.row_words = layout.row_words;
  c.k4 = layout.k4;
  c.thresholds = l.threshold_mem;
  c.levels = l.threshold_levels;
  c.out = view(l.tensors[chunk]);
  c.tap_weights = l.tap_weights_mem;
  return c;
}

apnn_layer_info_t Network::info(int id) const {
  const NetLayer& l = layer(id, "layer");
  apnn_layer_info_t info{};
  info.kind = l.kind;
  info.input = l.input;
  info.shape[0] = l.h;
  info.shape[1] = l.w;
  info.shape[2] = l.c;
  info.output = l.output;
  info.out_quant = l.out_quant;
  info.weight_quant = l.desc.weight_quant;
  info.macs = l.macs();
  if (l.is_weighted()) {
    const int64_t rows_padded = round_up(l.desc.out_channels, kRowAlign);
    info.weight_bytes = l.desc.weight_quant.bits * rows_padded * l.kh * l.kw * (round_up(l.in_c, kKAlignBits) / 8);
  }
  info.fused = (l.fused || l.is_virtual()) ? 1 : 0;
  info.row_words = l.tensors.empty() ? 0 : l.tensors[0].words;
  if (!chunk_size_.empty()) {
    std::string kernel;
    if (l.from_image) {
      InputPackCall image;  // the kernel for an aligned 8-bit image
      image.dtype = APNN_DTYPE_UINT8;
      image.out.quant = layers_[0].out_quant;
      image.im2col = im2col_geometry(l);
      info.call_images = chunk_size_[0];
      kernel = backend_->first_layer_kernel_name(first_layer_call(id, 0, image));
    } else if (l.is_weighted()) {
      info.call_images = chunk_size_[0];
      kernel = (l.im2col ? "im2col " : "") + backend_->conv2d_kernel_name(conv_call(id, 0));
    } else if (l.kind == APNN_LAYER_POOL && l.pool == APNN_POOL_MAX && !l.fused) {
      kernel = "max_pool";
    }
    kernel.copy(info.kernel, sizeof(info.kernel) - 1);
  }
  return info;
}

// ---- Plan ------------------------------------------------------------------------------

void Network::zero(void* mem, size_t bytes) {
  static const std::vector<char> zeros(size_t{16} << 20, 0);
  for (size_t off = 0; off < bytes; off += zeros.size())
    backend_->write(static_cast<char*>(mem) + off, zeros.data(), std::min(zeros.size(), bytes - off));
}

void Network::allocate_tensor(PackedMatrix& m, int64_t batch, int64_t h, int64_t w, int64_t c,
                              const apnn_quant_t& q, bool compact) {
  m = PackedMatrix{};
  m.rows = batch * h * w;
  require_arg(m.rows <= (int64_t{1} << 31), "a tensor has more than 2^31 pixels; use a smaller batch");
  m.cols = c;
  m.rows_padded = round_up(m.rows, kRowAlign);
  m.words = compact ? (c + 31) / 32 : round_up(c, kKAlignBits) / 32;
  m.quant = q;
  m.batch = batch;
  m.height = h;
  m.width = w;
  const size_t plane_bytes = static_cast<size_t>(m.total_words()) * sizeof(uint32_t);
  const size_t sum_bytes = static_cast<size_t>(m.rows_padded) * sizeof(int32_t);
  m.planes_mem = static_cast<uint32_t*>(backend_->allocate(plane_bytes));
  m.row_sums_mem = static_cast<int32_t*>(backend_->allocate(sum_bytes));
  // Padding rows and columns must be zero bits; kernels only write the real ones.
  zero(m.planes_mem, plane_bytes);
  zero(m.row_sums_mem, sum_bytes);
}

// Tensors that only the halo convolution and max pools write and read lose their 256-bit row
// padding (ResNet-18's 56 x 56 x 64 maps are then a quarter of the bytes, its 128-channel maps
// half): the halo kernel reads a pixel's channels as one entry, padded or not. Decided tensor by
// tensor in layer order, each with every call that touches it asking the backend under the
// decisions so far, so the last check of each call sees all of its tensors as they will be.
// The network_unpadded option 0 keeps every row padded (same results).
void Network::unpad_tensors(int last) {
  if (options_.network_unpadded == 0) return;
  for (int id = 1; id <= last; ++id) {
    NetLayer& l = layers_[id];
    if (l.tensors.empty()) continue;
    for (size_t k = 0; k < l.tensors.size(); ++k) {
      PackedMatrix& m = l.tensors[k];
      const int64_t padded = m.words, unpadded = (m.cols + 31) / 32;
      if (unpadded == padded) continue;
      m.words = unpadded;
      const bool served = unpadded_rows_served(id, static_cast<int>(k));
      m.words = padded;
      if (!served) continue;
      const PackedMatrix old = m;
      backend_->release(old.planes_mem);
      backend_->release(old.row_sums_mem);
      m.planes_mem = nullptr;
      m.row_sums_mem = nullptr;
      allocate_tensor(m, old.batch, old.height, old.width, old.cols, old.quant, true);
    }
  }
}

// Whether the kernels writing and reading layer `id`'s tensor of sub-batch `chunk` take it as
// it now is: convolutions the backend confirms, unfused max pools and from-image first layers
// (which read or write only the real words), nothing else.
bool Network::unpadded_rows_served(int id, int chunk) const {
  const NetLayer& l = layers_[id];
  auto conv_served = [&](int conv) {
    const NetLayer& c = layers_[conv];
    return c.kind == APNN_LAYER_CONV && !c.im2col && !c.from_image &&
           backend_->conv2d_takes_unpadded_rows(conv_call(conv, chunk));
  };
  auto unfused_max_pool = [](const NetLayer& p) {
    return p.kind == APNN_LAYER_POOL && p.pool == APNN_POOL_MAX && !p.fused;
  };
  int writer = id;  // a max pool fused into a convolution's epilogue is written by that convolution
  if (l.kind == APNN_LAYER_POOL && l.fused) writer = l.input;
  if (!(unfused_max_pool(layers_[writer]) || layers_[writer].from_image || conv_served(writer))) return false;
  for (int r : l.readers)
    if (!(unfused_max_pool(layers_[r]) || conv_served(r))) return false;
  return true;
}

void Network::release_plan() noexcept {
  recordings_.clear();
  recorded_.clear();
  for (auto& l : layers_) {
    for (auto& t : l.tensors) {
      backend_->release(t.planes_mem);
      backend_->release(t.row_sums_mem);
    }
    l.tensors.clear();
    l.fused = false;
    l.pooled_by = -1;
    l.time_us = 0.0;
  }
  backend_->release(input_mem_);
  backend_->release(output_mem_);
  input_mem_ = output_mem_ = nullptr;
  batch_ = 0;
  chunk_first_.clear();
  chunk_size_.clear();
}

void Network::plan(int64_t batch) {
  require_arg(batch >= 1 && batch <= kMaxDim, "batch must be in 1.." + str(kMaxDim) + ", got " + str(batch));
  const int last = layer_count() - 1;
  require_arg(last >= 1, "the network has no layers besides its input");
  for (int id = 1; id <= last; ++id) {
    const NetLayer& l = layers_[id];
    require_arg(!l.is_weighted() || l.has_weights,
                name(id) + " has no weights; call apnn_network_set_weights before planning");
    require_arg(l.output == APNN_LAYER_OUTPUT_PACKED || id == last,
                name(id) + " outputs " + (l.output == APNN_LAYER_OUTPUT_FLOAT32 ? "float32" : "int32") +
                    " but is not the last layer; only the network output may be float32 / int32");
    if (l.is_virtual()) {
      require_arg(id != last, name(id) + " is the last layer, but it only reinterprets its input for linear "
                                         "layers (unsupported layer order)");
      for (int r : l.readers)
        require_arg(layers_[r].kind == APNN_LAYER_LINEAR && layers_[r].input == id,
                    name(id) + " is read by " + name(r) + "; only linear layers may read it (unsupported layer order)");
    }
  }
  release_plan();
  batch_ = batch;
  try {
    // Fuse a max pool into the epilogue of the conv / linear layer it alone reads.
    for (int id = 1; id <= last; ++id) {
      NetLayer& p = layers_[id];
      if (p.kind != APNN_LAYER_POOL || p.pool != APNN_POOL_MAX || p.pool_pad != 0) continue;
      if (p.pool_size > 3 || p.pool_stride > p.pool_size) continue;
      NetLayer& src = layers_[p.input];
      if (!src.is_weighted() || src.desc.pool != APNN_POOL_NONE || src.readers.size() != 1) continue;
      p.fused = true;
      src.pooled_by = id;
    }
    // Sub-batches: as many images per call as kMaxCallOutputs and the network_max_call_pixels
    // option allow (linear layers run as 1x1 convolutions, one pixel per image).
    int64_t most = kMaxDim;
    for (const NetLayer& l : layers_) {
      if (!l.is_weighted()) continue;
      const int64_t pixels = std::max<int64_t>(1, l.conv_h * l.conv_w);
      const int64_t limit =
          std::min(options_.network_max_call_pixels > 0 ? options_.network_max_call_pixels : kMaxCallOutputs,
                   kMaxCallOutputs / std::max<int64_t>(1, l.desc.out_channels));
      most = std::min(most, std::max<int64_t>(1, limit / pixels));
    }
    const int64_t chunks = (batch + most - 1) / most, size = (batch + chunks - 1) / chunks;
    for (int64_t first = 0; first < batch; first += size) {
      chunk_first_.push_back(first);
      chunk_size_.push_back(std::min(size, batch - first));
    }
    // The first convolution's form; its weights are repacked when the form changes.
    int im2col_layer = -1;
    bool input_packed = true;
    for (int id = 1; id <= last; ++id) {
      NetLayer& l = layers_[id];
      if (l.kind != APNN_LAYER_CONV || l.source != 0) continue;
      const bool im2col = wants_im2col(id);
      if (im2col != l.im2col) pack_weights(l, l.input_codes, im2col);
      if (im2col) im2col_layer = id;
      const bool from_image = wants_from_image(id);
      if (from_image && !l.image_weights_mem) pack_image_weights(l);
      l.from_image = from_image;
      if (from_image) input_packed = false;  // its only reader reads the image itself
    }
    // Tensors: the input, every packed layer that is not virtual and not writing into a fused pool.
    for (int id = 0; id <= last; ++id) {
      NetLayer& l = layers_[id];
      if (l.is_virtual() || l.pooled_by >= 0 || l.output != APNN_LAYER_OUTPUT_PACKED) continue;
      if (id == 0 && !input_packed) continue;
      l.tensors.resize(chunk_size_.size());
      int64_t h = l.h, w = l.w, c = l.c;
      if (id == 0 && im2col_layer > 0) {  // the input packed as the first convolution's im2col rows
        const NetLayer& conv = layers_[im2col_layer];
        h = conv.conv_h;
        w = conv.conv_w;
        c = conv.kh * conv.kw * conv.in_c;
      }
      // A from-image first layer read by a max pool alone gets no 256-bit padding words: only
      // MMAs need them, and the pool reads just the real words (ResNet-18's 112 x 112 x 64 tensor
      // would be 4x the traffic).
      const bool compact = l.from_image && l.readers.size() == 1 && layers_[l.readers[0]].kind == APNN_LAYER_POOL &&
                           layers_[l.readers[0]].pool == APNN_POOL_MAX && !layers_[l.readers[0]].fused;
      for (size_t k = 0; k < chunk_size_.size(); ++k)
        allocate_tensor(l.tensors[k], chunk_size_[k], h, w, c, l.out_quant, compact);
    }
    const NetLayer& in = layers_[0];
    const size_t in_bytes = static_cast<size_t>(batch_ * in.h * in.w * in.c) * 4;
    input_mem_ = backend_->allocate(in_bytes);
    zero(input_mem_, in_bytes);
    const NetLayer& out = layers_[last];
    if (out.output != APNN_LAYER_OUTPUT_PACKED)
      output_mem_ = backend_->allocate(static_cast<size_t>(batch_ * out.h * out.w * out.c) * 4);
    unpad_tensors(last);
    // One eager pass: surfaces errors now and grows the backend's workspaces before any capture.
    run_steps(APNN_DTYPE_FLOAT32);
    backend_->synchronize();
  } catch (...) {
    release_plan();
    throw;
  }
}

// Caller's threshold tables and grouped convolutions have CUDA code paths (conv_dispatch.cu's
// effective_override, the separate epilogue's residual tables, conv_grouped.cu) that no GPU has
// run yet. Until one has, the CUDA backend refuses them rather than risk a wrong answer; the host
// backend runs them.
void Network::require_verified_on_cuda(bool plain, const std::string& what) const {
  require(plain || kind_ != APNN_BACKEND_CUDA, APNN_STATUS_UNSUPPORTED,
          what + " run on the host backend for now: the CUDA path is built but not yet verified on a GPU");
}

ConvCall Network::conv_call(int id, int chunk) const {
  const NetLayer& l = layers_[id];
  const NetLayer& src = layers_[l.source];
  ConvCall call;
  call.x = &src.tensors[chunk];
  call.w = &l.weights;
  ConvGeometry& g = call.geometry;
  g.batch = chunk_size_[chunk];
  g.height = src.h;
  g.width = src.w;
  g.channels = src.c;
  g.groups = l.desc.groups;
  g.out_channels = l.desc.out_channels;
  g.kh = l.kh;
  g.kw = l.kw;
  g.stride_h = l.desc.stride_h;
  g.stride_w = l.desc.stride_w;
  g.pad_h = l.desc.pad_h;
  g.pad_w = l.desc.pad_w;
  if (l.im2col) {  // a 1 x 1 convolution over the im2col rows of the input
    g.height = l.conv_h;
    g.width = l.conv_w;
    g.channels = l.kh * l.kw * l.in_c;
    g.kh = g.kw = 1;
    g.stride_h = g.stride_w = 1;
    g.pad_h = g.pad_w = 0;
  }
  g.out_h = l.conv_h;
  g.out_w = l.conv_w;
  g.pooled_h = l.conv_h;
  g.pooled_w = l.conv_w;
  // A float / int32 output (the last layer) goes to its sub-batch's part of the output buffer.
  void* y_mem = static_cast<char*>(output_mem_) + chunk_first_[chunk] * l.h * l.w * l.c * 4;
  if (l.output == APNN_LAYER_OUTPUT_INT32) {
    call.y_mem = y_mem;
    return call;
  }
  call.has_epilogue = true;
  EpilogueParams& e = call.epilogue;
  e = layer_epilogue(l);
  e.scale = l.scale_mem;
  e.bias = l.bias_mem;
  const NetLayer* target = &l;
  if (l.desc.pool == APNN_POOL_NONE && l.pooled_by >= 0) {
    target = &layers_[l.pooled_by];
    e.pool = APNN_POOL_MAX;
    e.pool_size = target->pool_size;
    e.pool_stride = target->pool_stride;
  }
  if (e.pool != APNN_POOL_NONE) {
    g.pooled_h = (g.out_h - e.pool_size) / e.pool_stride + 1;
    g.pooled_w = (g.out_w - e.pool_size) / e.pool_stride + 1;
  }
  if (l.desc.residual != 0) {
    const PackedMatrix& rm = layers_[l.desc.residual].tensors[chunk];
    ResidualParams& r = call.residual;
    r.channels = g.out_channels;
    r.planes = rm.planes_mem;
    r.rows_padded = rm.rows_padded;
    r.words = rm.words;
    r.bits = rm.quant.bits;
    for (int i = 0; i < r.bits; ++i) r.coefficient[i] = plane_coefficient(i, r.bits, rm.quant.encoding);
    r.real_offset = static_cast<int32_t>(real_offset(rm.quant));
  }
  if (l.output == APNN_LAYER_OUTPUT_FLOAT32) {
    call.y_mem = y_mem;
  } else {
    call.y_packed = const_cast<PackedMatrix*>(&target->tensors[chunk]);
    e.thresholds = l.threshold_mem;
    e.threshold_levels = l.threshold_levels;
    e.threshold_residual_codes = l.threshold_residual_codes;
    e.thresholds_only = l.thresholds_given;
  }
  return call;
}

// The epilogue steps of a layer's description (scale / bias pointers and any max pool fused
// from a following pool layer are the caller's).
EpilogueParams Network::layer_epilogue(const NetLayer& l) const {
  EpilogueParams e;
  e.residual_scale = l.desc.residual_scale;
  e.activation = l.desc.activation;
  e.clip_lo = l.desc.clip_lo;
  e.clip_hi = l.desc.clip_hi;
  e.out_scale = l.output == APNN_LAYER_OUTPUT_PACKED ? l.desc.out_scale : 1.0f;
  if (l.desc.pool != APNN_POOL_NONE) {
    e.pool = l.desc.pool;
    e.pool_size = l.desc.pool_size;
    e.pool_stride = l.desc.pool_stride;
  }
  return e;
}

Im2colGeometry Network::im2col_geometry(const NetLayer& l) const {
  const NetLayer& input = layers_[0];
  Im2colGeometry g;
  g.kh = static_cast<int>(l.kh);
  g.kw = static_cast<int>(l.kw);
  g.stride_h = l.desc.stride_h;
  g.stride_w = l.desc.stride_w;
  g.pad_h = l.desc.pad_h;
  g.pad_w = l.desc.pad_w;
  g.in_h = input.h;
  g.in_w = input.w;
  g.in_c = input.c;
  g.out_h = l.conv_h;
  g.out_w = l.conv_w;
  return g;
}

std::vector<Network::Step> Network::steps(apnn_dtype_t input_dtype) const {
  std::vector<Step> out;
  Backend* b = backend_.get();
  const NetLayer& input = layers_[0];
  for (size_t k = 0; k < chunk_size_.size(); ++k) {
    const int chunk = static_cast<int>(k);
    InputPackCall in;
    in.values = static_cast<const char*>(input_mem_) +
                chunk_first_[k] * input.h * input.w * input.c * static_cast<int64_t>(dtype_bytes(input_dtype));
    in.dtype = input_dtype;
    in.scale = input_scale_;
    if (input.tensors.empty()) {  // read by a from-image layer only: just its quantization
      in.out.quant = input.out_quant;
    } else {
      in.out = view(input.tensors[k]);
    }
    bool from_image = false;
    for (int r : input.readers) {
      const NetLayer& l = layers_[r];
      from_image = from_image || l.from_image;
      if (l.im2col) in.im2col = im2col_geometry(l);
    }
    if (!from_image) out.push_back({0, [b, in] { b->pack_input(in); }});
    for (int id = 1; id < layer_count(); ++id) {
      const NetLayer& l = layers_[id];
      if (l.from_image) {
        const FirstLayerCall call = first_layer_call(id, chunk, in);
        out.push_back({id, [b, call] { b->first_layer(call); }});
      } else if (l.is_weighted()) {
        const ConvCall call = conv_call(id, chunk);
        out.push_back({id, [b, call] { b->conv2d(call); }});
      } else if (l.kind == APNN_LAYER_POOL && l.pool == APNN_POOL_MAX && !l.fused) {
        PoolCall pc;
        pc.x = view(layers_[l.input].tensors[k]);
        pc.y = view(l.tensors[k]);
        pc.kernel = l.pool_size;
        pc.stride = l.pool_stride;
        pc.pad = l.pool_pad;
        out.push_back({id, [b, pc] { b->max_pool(pc); }});
      }
    }
  }
  return out;
}

void Network::run_steps(apnn_dtype_t dtype) {
  for (const Step& s : steps(dtype)) s.fn();
}

// ---- Run -------------------------------------------------------------------------------

void Network::output_shape(int64_t shape[4], apnn_dtype_t* dtype) const {
  require_arg(batch_ > 0, "the network is not planned; call apnn_network_plan first");
  const NetLayer& l = layers_.back();
  if (shape) {
    shape[0] = batch_;
    shape[1] = l.h;
    shape[2] = l.w;
    shape[3] = l.c;
  }
  if (dtype) *dtype = l.output == APNN_LAYER_OUTPUT_FLOAT32 ? APNN_DTYPE_FLOAT32 : APNN_DTYPE_INT32;
}

void Network::run(const void* input, apnn_dtype_t dtype, void* output) {
  require_arg(batch_ > 0, "the network is not planned; call apnn_network_plan first");
  require_arg(input != nullptr && output != nullptr, "input or output is NULL");
  check_dtype(dtype, "input");
  const NetLayer& in = layers_[0];
  const int64_t count = batch_ * in.h * in.w * in.c;
  const apnn_quant_t& q = in.out_quant;
  if (dtype == APNN_DTYPE_FLOAT32) {
    const float* v = static_cast<const float*>(input);
    for (int64_t i = 0; i < count; ++i)
      require_arg(!std::isnan(v[i]), "input value " + str(i) + " is NaN");
  } else if (!(dtype == APNN_DTYPE_UINT8 && q.encoding == APNN_ENCODING_UNSIGNED && q.bits == 8)) {
    for (int64_t i = 0; i < count; ++i) {
      const int32_t c = load_int(input, dtype, i);
      require_arg(code_valid(c, q.bits, q.encoding),
                  "input code " + str(c) + " at index " + str(i) + " is outside " + str(code_min(q.bits, q.encoding)) +
                      ".." + str(code_max(q.bits, q.encoding)) + " for " + str(q.bits) + "-bit " +
                      encoding_name(q.encoding) + " input codes");
    }
  }
  backend_->write(input_mem_, input, static_cast<size_t>(count) * dtype_bytes(dtype));
  last_dtype_ = dtype;
  if (!recorded_[dtype]) {
    run_steps(dtype);  // the first run of a dtype runs eagerly, then records the sequence
    recorded_[dtype] = true;
    backend_->synchronize();
    try {
      recordings_[dtype] = backend_->record([this, dtype] { run_steps(dtype); });
    } catch (const Error&) {
      recordings_[dtype] = nullptr;  // not capturable here: keep launching the steps one by one
    }
  } else if (recordings_[dtype]) {
    recordings_[dtype]->replay();
  } else {
    run_steps(dtype);
  }
  read_output(output);
}

void Network::read_output(void* output) {
  const NetLayer& l = layers_.back();
  const int64_t count = batch_ * l.h * l.w * l.c;
  if (l.output != APNN_LAYER_OUTPUT_PACKED) {
    backend_->read(output, output_mem_, static_cast<size_t>(count) * 4);
    return;
  }
  // Packed output: decode the codes from the planes of each sub-batch.
  for (size_t chunk = 0; chunk < l.tensors.size(); ++chunk) {
    const PackedMatrix& m = l.tensors[chunk];
    std::vector<uint32_t> planes(static_cast<size_t>(m.total_words()));
    backend_->read(planes.data(), m.planes_mem, planes.size() * sizeof(uint32_t));
    int32_t* y = static_cast<int32_t*>(output) + chunk_first_[chunk] * l.h * l.w * l.c;
    const int bits = m.quant.bits;
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t k = 0; k < m.cols; ++k) {
        int32_t v = 0;
        for (int i = 0; i < bits; ++i)
          if ((planes[(i * m.rows_padded + r) * m.words + k / 32] >> (k % 32)) & 1u)
            v += plane_coefficient(i, bits, m.quant.encoding);
        y[r * m.cols + k] = v + value_offset(m.quant.encoding);
      }
  }
}

double Network::benchmark(int warmup, int iters) {
  require_arg(batch_ > 0, "the network is not planned; call apnn_network_plan first");
  require_arg(warmup >= 0 && iters >= 1, "need warmup >= 0 and iters >= 1");
  const std::vector<Step> all = steps(last_dtype_);
  const double total = backend_->benchmark([&all] { for (const Step& s : all) s.fn(); }, warmup, iters);
  for (auto& l : layers_) l.time_us = 0.0;
  for (int id = 0; id < layer_count(); ++id) {
    std::vector<const Step*> mine;
    for (const Step& s : all)
      if (s.layer == id) mine.push_back(&s);
    if (mine.empty()) continue;  // fused or virtual
    layers_[id].time_us = backend_->benchmark([&mine] { for (const Step* s : mine) s->fn(); }, std::min(warmup, 2), iters);
  }
  return total;
}

}  // namespace apnn
