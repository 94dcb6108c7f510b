// A whole quantized network (apnn.h, "Networks"): the layer graph, its validation, the plan
// (buffers, packed weights, the fixed launch sequence, its CUDA graph) and its execution over
// the Backend interface. The C API (cuda/api_network.cc) only checks handles and forwards here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apnn/apnn.h"
#include "common/backend.h"

namespace apnn {

struct NetLayer {
  apnn_layer_kind_t kind = APNN_LAYER_INPUT;
  int input = -1;
  int64_t h = 0, w = 0, c = 0;  // output shape per image

  // conv / linear
  apnn_layer_desc_t desc{};
  int source = -1;                 // the layer whose tensor is read (through flatten / avg pool)
  bool over_avg_pool = false;      // linear reading a global average pool
  int64_t kh = 1, kw = 1, in_c = 0;  // kernel and input channels of the convolution run
  int64_t conv_h = 0, conv_w = 0;  // output before the epilogue's pooling
  // pool
  apnn_pool_t pool = APNN_POOL_NONE;
  int pool_size = 0, pool_stride = 1, pool_pad = 0;

  apnn_layer_output_t output = APNN_LAYER_OUTPUT_PACKED;
  apnn_quant_t out_quant{};
  std::vector<int> readers;  // layers reading this one as input or residual

  // weights (backend memory)
  bool has_weights = false;
  ConvWeights weights;
  // A conv reading the network input keeps its codes: the plan may run it as an im2col GEMM
  // (nn_types.h, Im2colGeometry), which packs the same codes as one 1 x 1 x KH*KW*C kernel.
  std::vector<int32_t> input_codes;
  bool im2col = false;  // the planned form (weights packed to match)
  // ... or, on CUDA, the whole layer straight from the image (nn_types.h, FirstLayerCall) with
  // its weights' real values as int8 words.
  bool from_image = false;
  int32_t* image_weights_mem = nullptr;
  uint8_t* tap_weights_mem = nullptr;  // the same as wgmma operands, where first_layer_taps_fit
  float* scale_mem = nullptr;
  float* bias_mem = nullptr;
  // CUDA, packed output: the epilogue as a threshold table (common/epilogue_thresholds.h),
  // threshold_levels + 2 rows of O int32, one such table per code of a packed residual.
  int32_t* threshold_mem = nullptr;
  int threshold_levels = 0;
  int threshold_residual_codes = 0;
  bool thresholds_given = false;  // the caller's table (apnn.h, "Threshold epilogues"), not derived
  int64_t y_bound = 0;  // largest |int32 result| the layer's convolution can produce

  // plan
  bool fused = false;     // a max pool run inside its input's epilogue
  int pooled_by = -1;     // conv / linear: the fused max pool whose tensor it writes
  std::vector<PackedMatrix> tensors;  // packed output, one per sub-batch (allocated at plan)
  double time_us = 0.0;

  bool is_weighted() const { return kind == APNN_LAYER_CONV || kind == APNN_LAYER_LINEAR; }
  bool is_virtual() const {
    return kind == APNN_LAYER_FLATTEN || (kind == APNN_LAYER_POOL && pool == APNN_POOL_AVG);
  }
  int64_t macs() const;
};

class Network {
 public:
  // `kind` is the backend of the owning context; the network keeps a private backend of that
  // kind (own stream and workspaces), so nothing else can move memory its CUDA graph uses.
  // options: the creating context's kernel choices (apnn_options_t), kept for the network's life.
  Network(apnn_backend_t kind, const apnn_options_t& options, const apnn_network_input_desc_t& input);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  int add_weighted(const apnn_layer_desc_t& desc, bool linear);
  int add_pool(int input, apnn_pool_t pool, int size, int stride, int pad);
  int add_flatten(int input);
  void set_weights(int id, const apnn_layer_weights_t& weights);

  int layer_count() const { return static_cast<int>(layers_.size()); }
  apnn_layer_info_t info(int id) const;

  void plan(int64_t batch);
  void output_shape(int64_t shape[4], apnn_dtype_t* dtype) const;
  void run(const void* input, apnn_dtype_t dtype, void* output);
  double benchmark(int warmup, int iters);
  double layer_time(int id) const { return layers_[id].time_us; }

 private:
  struct Step {
    int layer;
    std::function<void()> fn;
  };

  std::string name(int id) const;
  void require_verified_on_cuda(bool plain, const std::string& what) const;
  const NetLayer& layer(int id, const char* role) const;
  void check_readable(int id, int reader, const char* role) const;
  void release_plan() noexcept;
  void release_weights(NetLayer& l) noexcept;
  // Rows of 256-bit padded words (what MMAs read), or `compact`: ceil(c / 32) words.
  void allocate_tensor(PackedMatrix& m, int64_t batch, int64_t h, int64_t w, int64_t c, const apnn_quant_t& q,
                       bool compact = false);
  void zero(void* mem, size_t bytes);
  void unpad_tensors(int last);
  bool unpadded_rows_served(int id, int chunk) const;
  void pack_weights(NetLayer& l, const std::vector<int32_t>& codes, bool im2col);
  bool wants_im2col(int id) const;
  bool wants_packed_taps(const NetLayer& l) const;
  bool wants_from_image(int id) const;
  void pack_image_weights(NetLayer& l);
  // The im2col geometry of the first convolution `l` over the network input.
  Im2colGeometry im2col_geometry(const NetLayer& l) const;
  FirstLayerCall first_layer_call(int id, int chunk, const InputPackCall& input) const;
  std::vector<Step> steps(apnn_dtype_t input_dtype) const;
  ConvCall conv_call(int id, int chunk) const;
  EpilogueParams layer_epilogue(const NetLayer& l) const;
  void run_steps(apnn_dtype_t dtype);
  void read_output(void* output);

  apnn_options_t options_;  // the kernel choices (network_* fields here; the rest in the backend)
  std::unique_ptr<Backend> backend_;
  apnn_backend_t kind_ = APNN_BACKEND_HOST;
  float input_scale_ = 1.0f;
  std::vector<NetLayer> layers_;

  int64_t batch_ = 0;              // 0: not planned
  // The batch runs as sub-batches of consecutive images when one launch could not cover a
  // layer (grid limits); each sub-batch has its own tensors. first image and count per chunk.
  std::vector<int64_t> chunk_first_, chunk_size_;
  void* input_mem_ = nullptr;      // staging: N*H*W*C values of up to 4 bytes
  void* output_mem_ = nullptr;     // float / int32 output of the last layer
  apnn_dtype_t last_dtype_ = APNN_DTYPE_UINT8;
  std::map<int, std::unique_ptr<Backend::Recording>> recordings_;  // per input dtype
  std::map<int, bool> recorded_;   // dtype -> recording attempted (nullptr on the host)
};

}  // namespace apnn
