// Building a network: layers, their validation and their description (layer_info).
#include "nn/network.h"

#include <limits>
#include <string>
#include <vector>

#include "common/epilogue.h"
#include "common/epilogue_thresholds.h"
#include "common/quant.h"
#include "common/status.h"
#include "conv/conv_weights.h"
#include "nn/network_internal.h"

namespace apnn {

using namespace net_detail;

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

// Caller's threshold tables and grouped convolutions have CUDA code paths (conv_dispatch.cu's
// effective_override, the separate epilogue's residual tables, conv_grouped.cu) that no GPU has
// run yet. Until one has, the CUDA backend refuses them rather than risk a wrong answer; the host
// backend runs them.
void Network::require_verified_on_cuda(bool plain, const std::string& what) const {
  require(plain || kind_ != APNN_BACKEND_CUDA, APNN_STATUS_UNSUPPORTED,
          what + " run on the host backend for now: the CUDA path is built but not yet verified on a GPU");
}

}  // namespace apnn
