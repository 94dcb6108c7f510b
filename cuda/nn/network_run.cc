// Running a planned network: the calls of every layer and sub-batch (steps), recorded once as a
// CUDA graph and replayed; reading the output; timing.
#include "nn/network.h"

#include <algorithm>
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
