// Whole networks (FP32 / FP16 / INT8 on CUTLASS GEMMs, binarized in the style of TCBNN):
// im2col + CUTLASS GEMM + one fused epilogue kernel per CONV/FC layer, own pooling kernels.
#pragma once

#include <memory>
#include <vector>

#include "runtime.h"

namespace apnnb {

struct LayerPlan {
  apnnb_layer_t desc{};
  int src = -1;  // producing layer, -1: network input
  int in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int kh = 0, kw = 0, stride = 1, pad = 0;  // CONV/FC window (FC: the whole input)
  int64_t m = 0;          // GEMM rows: batch * out_h * out_w
  int64_t k_real = 0;     // kh * kw * in_c (elements; BNN: +-1 positions)
  int64_t k_units = 0;    // unpadded GEMM row length in storage units (BNN: 32-bit words)
  int64_t k_gemm = 0;     // padded GEMM row length in storage units
  bool direct = false;    // the input already is the GEMM A operand (no im2col)
  bool last = false;      // output stored as float32
  float scale = 1.0f;     // INT8 requantization
  DeviceBuffer weights, bias, out;
  DeviceBuffer weight_popc;  // BNN on the AND path: popc(b) per weight row (int32, out_c)
};

class Net {
 public:
  Net(apnnb_precision_t precision, int batch, int h, int w, int c, const apnnb_layer_t* layers, int count,
      uint64_t seed);
  void layer_shape(int layer, int* h, int* w, int* c) const;
  void set_params(int layer, const float* weights, int64_t weight_count, const float* bias, int64_t bias_count);
  void run(const float* input, int64_t input_count, float* output, int64_t output_count, int warmup, int iters,
           double* microseconds);

 private:
  void forward();
  size_t elem_bytes() const;
  size_t act_bytes(int h, int w, int c) const;  // per image
  int64_t units(int c) const;                   // storage units per pixel of c channels
  void launch_layer(int index);

  apnnb_precision_t precision_;
  int batch_, h_, w_, c_;
  std::vector<LayerPlan> layers_;
  std::unique_ptr<Stream> stream_;  // created after the device check
  bool bnn_and_ = false;  // BNN on the CUTLASS b1 AND-popc GEMM (sm_90+: no XOR-popc there)
  DeviceBuffer input_f32_, input_, col_, acc_;
  DeviceBuffer row_popc_;  // BNN AND path: popc(a) per GEMM row of the current layer (int32)
};

}  // namespace apnnb
