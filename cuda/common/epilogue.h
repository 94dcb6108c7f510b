// The fused layer epilogue (apnn.h, "The fused epilogue"): per-channel affine, residual,
// activation, pooling and re-quantization. Every function is __host__ __device__ so the host
// backend and the CUDA kernels run the very same arithmetic; the float operations go through
// fl_* helpers that round each step on its own (no contraction into FMA), which is what makes
// host, CUDA and the numpy oracle agree bit for bit.
#pragma once

#include <cstdint>

#include "apnn/apnn.h"
#include "common/quant.h"

namespace apnn {

constexpr int kEpilogueMaxPlanes = 8;

// What an epilogue does, by value; pointers are backend memory.
struct EpilogueParams {
  const float* scale = nullptr;  // O entries (never null once created)
  const float* bias = nullptr;   // O entries
  float residual_scale = 1.0f;
  int activation = APNN_ACTIVATION_NONE;
  float clip_lo = 0.0f, clip_hi = 0.0f;
  int pool = APNN_POOL_NONE;
  int pool_size = 1, pool_stride = 1;
  float out_scale = 1.0f;
  // Optional (CUDA): the packed output's codes as thresholds on y (common/epilogue_thresholds.h),
  // (threshold_levels + 2) x O int32 in backend memory; kernels use it instead of steps 1, 3, 5.
  const int32_t* thresholds = nullptr;
  int threshold_levels = 0;
  // > 0: the table is that many tables stacked, one per code of a packed residual of <= 2 bits
  // (epilogue_thresholds.h); 0: a table without residual.
  int threshold_residual_codes = 0;
  // The table is the caller's (apnn.h, "Threshold epilogues"): there are no float steps to fall
  // back on, and it may be wider than the fused kernels hold (threshold_table_fits_kernels).
  bool thresholds_only = false;
};

// Where the residual comes from: nothing, int32 values, or a packed tensor's planes. Both
// are indexed by (pre-pooling output pixel m, channel o).
struct ResidualParams {
  const int32_t* int32_values = nullptr;  // M x channels, row-major
  const uint32_t* planes = nullptr;       // packed tensor of M pixels x channels
  int64_t channels = 0;
  int64_t rows_padded = 0, words = 0;
  int bits = 0;
  int32_t coefficient[kEpilogueMaxPlanes] = {};
  int32_t real_offset = 0;  // value_offset - zero_point
};

// Codes of a packed output tensor.
struct OutputQuant {
  int bits = 0;
  apnn_encoding_t encoding = APNN_ENCODING_UNSIGNED;
  int32_t zero_point = 0;
  int32_t lo = 0, hi = 0;  // code range of (bits, encoding)
};

// The re-quantization target of an output tensor with quantization `q`.
inline OutputQuant output_quant(const apnn_quant_t& q) {
  OutputQuant out;
  out.bits = q.bits;
  out.encoding = q.encoding;
  out.zero_point = q.zero_point;
  out.lo = code_min(q.bits, q.encoding);
  out.hi = code_max(q.bits, q.encoding);
  return out;
}

#if defined(__CUDA_ARCH__)
APNN_HD float fl_mul(float a, float b) { return __fmul_rn(a, b); }
APNN_HD float fl_add(float a, float b) { return __fadd_rn(a, b); }
APNN_HD float fl_div(float a, float b) { return __fdiv_rn(a, b); }
APNN_HD float fl_from_int(int32_t v) { return __int2float_rn(v); }
APNN_HD float fl_rint(float a) { return rintf(a); }
#else
// Host translation units that include this are built with -ffp-contract=off, so a * b + c
// stays two roundings; x86-64 SSE arithmetic is IEEE round-to-nearest-even.
APNN_HD float fl_mul(float a, float b) { return a * b; }
APNN_HD float fl_add(float a, float b) { return a + b; }
APNN_HD float fl_div(float a, float b) { return a / b; }
APNN_HD float fl_from_int(int32_t v) { return static_cast<float>(v); }
APNN_HD float fl_rint(float a) { return __builtin_rintf(a); }  // half to even in the default mode
#endif

// The residual's integer real value at (pixel m, channel o); 0 without a residual.
APNN_HD int32_t residual_value(const ResidualParams& r, int64_t m, int64_t o) {
  if (r.int32_values) return r.int32_values[m * r.channels + o];
  if (!r.planes) return 0;
  int32_t v = r.real_offset;
  for (int i = 0; i < r.bits; ++i) {
    const uint32_t word = r.planes[(i * r.rows_padded + m) * r.words + o / 32];
    if ((word >> (o % 32)) & 1u) v += r.coefficient[i];
  }
  return v;
}

// Steps 1-3: affine, residual, activation of one conv output.
// With the channel's scale and bias already loaded (kernels hoist them out of pixel loops);
// kResidual says whether `r` holds a residual (kernels decide it once per launch).
template <bool kResidual>
APNN_HD float epilogue_affine(const EpilogueParams& e, const ResidualParams& r, int32_t y, int64_t m, int64_t o,
                              float scale, float bias) {
  float a = fl_add(fl_mul(fl_from_int(y), scale), bias);
  if (kResidual) a = fl_add(a, fl_mul(fl_from_int(residual_value(r, m, o)), e.residual_scale));
  if (e.activation == APNN_ACTIVATION_RELU) {
    a = a > 0.0f ? a : 0.0f;
  } else if (e.activation == APNN_ACTIVATION_CLIP) {
    a = a >= e.clip_lo ? a : e.clip_lo;
    a = a > e.clip_hi ? e.clip_hi : a;
  }
  return a;
}
APNN_HD float epilogue_pre_pool_sb(const EpilogueParams& e, const ResidualParams& r, int32_t y, int64_t m, int64_t o,
                                   float scale, float bias) {
  return (r.int32_values || r.planes) ? epilogue_affine<true>(e, r, y, m, o, scale, bias)
                                      : epilogue_affine<false>(e, r, y, m, o, scale, bias);
}
APNN_HD float epilogue_pre_pool(const EpilogueParams& e, const ResidualParams& r, int32_t y, int64_t m, int64_t o) {
  return epilogue_pre_pool_sb(e, r, y, m, o, e.scale[o], e.bias[o]);
}

// Step 4, incrementally: fold the next window element `v` (index `i` in row-major order).
APNN_HD float pool_step(int pool, float acc, float v, int i) {
  if (i == 0) return v;
  if (pool == APNN_POOL_MAX) return v > acc ? v : acc;
  return fl_add(acc, v);
}
APNN_HD float pool_finish(int pool, float acc, int window) {
  return pool == APNN_POOL_AVG ? fl_div(acc, fl_from_int(window)) : acc;
}

// Step 5: the output code of a final value.
APNN_HD int32_t requantize(const OutputQuant& q, float out_scale, float a) {
  if (q.encoding == APNN_ENCODING_BINARY) return a >= 0.0f ? 1 : -1;
  // 0 / out_scale is 0: a zero dividend (half of all values after ReLU) would send the GPU's
  // IEEE division down its slow path, so it divides 1 instead and the result is replaced.
  const bool zero = a == 0.0f;
  float t = fl_rint(fl_div(zero ? 1.0f : a, out_scale));
  if (zero) t = 0.0f;
  const float lo = static_cast<float>(q.lo - q.zero_point), hi = static_cast<float>(q.hi - q.zero_point);
  t = t >= lo ? t : lo;
  t = t > hi ? hi : t;
  return static_cast<int32_t>(t) + q.zero_point;
}

}  // namespace apnn
