// Planning a network for a batch: sub-batches, the im2col / from-image / packed-tap forms, the
// fused pools, and the tensors (padded or not) of every layer.
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

}  // namespace apnn
