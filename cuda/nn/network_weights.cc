// A network's weights: codes or float values packed into the layout each layer's kernel reads
// (plain, packed taps, im2col rows, from-image int8 fragments), epilogues and threshold tables.
#include "nn/network.h"

#include <algorithm>
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

}  // namespace apnn
