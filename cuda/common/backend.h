// The interface every backend (host, CUDA) implements; the C API (cuda/api.cc) validates
// arguments and then calls into one of these. All pointers named *_mem are backend memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "apnn/apnn.h"
#include "common/status.h"
#include "conv/conv_types.h"
#include "nn/nn_types.h"

namespace apnn {

// Shape and storage of a packed matrix (layout: see apnn.h).
struct PackedMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t rows_padded = 0;
  int64_t words = 0;  // uint32 words per row of one plane
  apnn_quant_t quant{};
  uint32_t* planes_mem = nullptr;    // bits * rows_padded * words words
  int32_t* row_sums_mem = nullptr;   // rows_padded entries: sum over k of the plane part
  // NHWC tensor shape (apnn_pack_nhwc): rows = batch * height * width, cols = channels.
  // batch == 0 for a plain matrix.
  int64_t batch = 0, height = 0, width = 0;

  int64_t plane_words() const { return rows_padded * words; }
  int64_t total_words() const { return quant.bits * plane_words(); }
};

// Tile configurations of the CUDA GEMM (apnn_context_set_gemm_override numbers them 0..N-1).
constexpr int kNumGemmConfigs = APNN_GEMM_CONFIGS;

// A pinned GEMM kernel choice (apnn_context_set_gemm_override); negatives / 0 mean automatic.
struct GemmOverride {
  int config = -1;
  int split_k = 0;
  bool generic = false;
  bool no_cluster = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual void info(apnn_context_info_t* info) const = 0;

  // Memory of this backend. allocate throws Error(OUT_OF_MEMORY) on failure.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* mem) noexcept = 0;
  virtual void write(void* mem, const void* host, size_t bytes) = 0;
  virtual void read(void* host, const void* mem, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // Packs `codes_mem` (rows x cols codes of `dtype`, backend memory) into `out`, whose
  // shape, quant and storage are already set. Throws Error(INVALID_ARGUMENT) naming the
  // first code out of range.
  virtual void pack(const void* codes_mem, apnn_dtype_t dtype, PackedMatrix& out) = 0;

  // Y (M x N int32, backend memory) = (X - zx)(W - zw)^T; shapes already validated.
  virtual void gemm(const PackedMatrix& x, const PackedMatrix& w, int32_t* y_mem) = 0;
  virtual std::string gemm_kernel_name(const PackedMatrix& x, const PackedMatrix& w) const = 0;
  virtual void set_gemm_override(const GemmOverride& choice) = 0;

  // Convolution (cuda/conv, cuda/host/host_conv.cc); arguments already validated.
  // Whether conv2d takes weights with packed taps (ConvWeights::tap_words).
  virtual bool conv_tap_packing() const { return false; }
  virtual void conv2d(const ConvCall&) {
    throw Error(APNN_STATUS_UNSUPPORTED, "this backend has no convolution");
  }
  virtual std::string conv2d_kernel_name(const ConvCall&) const { return "none"; }
  // Whether conv2d computes this call (with its tensors' words as given) where x, the residual
  // or the packed output has rows without the 256-bit padding (a network's own tensors).
  virtual bool conv2d_takes_unpadded_rows(const ConvCall&) const { return false; }
  virtual void set_conv_override(const ConvOverride&) {}
  // The kernel choices (apnn_options_t, validated); the host backend has none to make.
  virtual void set_options(const apnn_options_t&) {}

  // Median time of one call of `op` in microseconds, after `warmup` calls.
  virtual double benchmark(const std::function<void()>& op, int warmup, int iters) = 0;

  // Networks (cuda/nn): quantize + pack the network input, and max pooling on packed codes.
  virtual void pack_input(const InputPackCall&) {
    throw Error(APNN_STATUS_UNSUPPORTED, "this backend cannot pack network inputs");
  }
  virtual void max_pool(const PoolCall&) {
    throw Error(APNN_STATUS_UNSUPPORTED, "this backend has no max pooling");
  }
  // The first convolution straight from the image (nn_types.h, FirstLayerCall).
  // The kernel first_layer runs for the call with an aligned 8-bit image (tests assert it).
  virtual std::string first_layer_kernel_name(const FirstLayerCall&) const { return "none"; }
  virtual void first_layer(const FirstLayerCall&) {
    throw Error(APNN_STATUS_UNSUPPORTED, "this backend has no direct first layer");
  }
  // A fixed launch sequence recorded once and replayed (a CUDA graph on the CUDA backend).
  class Recording {
   public:
    virtual ~Recording() = default;
    virtual void replay() = 0;
  };
  // Records the work `op` queues; nullptr where replaying would only be running `op` again
  // (the host). `op` must not synchronize or allocate while it is recorded.
  virtual std::unique_ptr<Recording> record(const std::function<void()>&) { return nullptr; }
};

std::unique_ptr<Backend> make_host_backend();
// Throws Error(NO_DEVICE) when there is no usable GPU.
std::unique_ptr<Backend> make_cuda_backend();
// Number of usable CUDA devices (0 without GPU or driver); never throws.
int cuda_device_count();

}  // namespace apnn
