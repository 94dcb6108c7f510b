// The C API of convolution and fused epilogues (apnn.h, "Convolution and fused epilogues"):
// argument checks, handle bookkeeping, then one call into the backend.
#include <algorithm>
#include <cmath>
#include <memory>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "apnn/apnn.h"
#include "common/api_util.h"
#include "common/epilogue_thresholds.h"
#include "common/objects.h"
#include "common/quant.h"
#include "common/status.h"
#include "conv/conv_objects.h"
#include "conv/conv_weights.h"

using apnn::check_buffer;
using apnn::check_context;
using apnn::check_packed;
using apnn::lock_context;
using apnn::guarded;
using apnn::require;
using apnn::require_arg;
using apnn::Scratch;

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int64_t kMaxKernel = 15;

std::string str(int64_t v) { return std::to_string(v); }

size_t code_size(apnn_dtype_t dtype) {
  require_arg(dtype == APNN_DTYPE_INT8 || dtype == APNN_DTYPE_UINT8 || dtype == APNN_DTYPE_INT32,
              "codes must be int8, uint8 or int32, got dtype " + str(static_cast<int>(dtype)));
  return dtype == APNN_DTYPE_INT32 ? 4 : 1;
}

void check_dims(const char* what, const int64_t* dims, const char* const* names, int count) {
  for (int i = 0; i < count; ++i)
    require_arg(dims[i] >= 1 && dims[i] <= kMaxDim, std::string(what) + ": " + names[i] + " must be in 1.." +
                                                        str(kMaxDim) + ", got " + str(dims[i]));
}

// A tensor-shaped packed matrix with zeroed storage; the caller owns it until registered.
apnn_packed* new_tensor(apnn_context_t ctx, int64_t n, int64_t h, int64_t w, int64_t c, const apnn_quant_t& quant) {
  const int64_t rows = n * h * w;
  require_arg(rows <= (int64_t{1} << 31), "tensor has more than 2^31 pixels");
  auto* p = new apnn_packed;
  p->ctx = ctx;
  auto& m = p->matrix;
  m.rows = rows;
  m.cols = c;
  m.rows_padded = apnn::round_up(rows, apnn::kRowAlign);
  m.words = apnn::round_up(c, apnn::kKAlignBits) / 32;
  m.quant = quant;
  m.batch = n;
  m.height = h;
  m.width = w;
  try {
    const size_t plane_bytes = static_cast<size_t>(m.total_words()) * sizeof(uint32_t);
    const size_t sum_bytes = static_cast<size_t>(m.rows_padded) * sizeof(int32_t);
    m.planes_mem = static_cast<uint32_t*>(ctx->backend->allocate(plane_bytes));
    m.row_sums_mem = static_cast<int32_t*>(ctx->backend->allocate(sum_bytes));
    // Zero bits and zero row sums: padding must be zero, and all-zero bits are consistent codes.
    const std::vector<char> zeros(std::max(plane_bytes, sum_bytes), 0);
    ctx->backend->write(m.planes_mem, zeros.data(), plane_bytes);
    ctx->backend->write(m.row_sums_mem, zeros.data(), sum_bytes);
  } catch (...) {
    apnn::free_packed(p);
    throw;
  }
  return p;
}

void check_tensor(apnn_context_t ctx, apnn_packed_t p, const char* name) {
  check_packed(ctx, p, name);
  require_arg(p->matrix.batch > 0, std::string(name) +
                                       " is a plain matrix; pack convolution tensors with apnn_pack_nhwc");
}

std::string shape_str(int64_t a, int64_t b, int64_t c, int64_t d) {
  return str(a) + " x " + str(b) + " x " + str(c) + " x " + str(d);
}

// The epilogue's threshold table for output codes `q` and an optional packed residual of codes
// `residual` (one part per residual code), in backend memory, built on first use.
const int32_t* threshold_table(apnn_epilogue& e, const apnn::OutputQuant& q, const apnn_quant_t* residual) {
  const auto key = std::make_tuple(q.bits, static_cast<int>(q.encoding), q.zero_point, residual ? residual->bits : 0,
                                   residual ? static_cast<int>(residual->encoding) : 0,
                                   residual ? residual->zero_point : 0);
  auto found = e.threshold_tables.find(key);
  if (found != e.threshold_tables.end()) return found->second;
  const std::vector<int32_t> table =
      apnn::build_threshold_table(e.scale_host.data(), e.bias_host.data(), e.channels, e.params, q, residual);
  auto* backend = e.ctx->backend.get();
  auto* mem = static_cast<int32_t*>(backend->allocate(table.size() * sizeof(int32_t)));
  try {
    backend->write(mem, table.data(), table.size() * sizeof(int32_t));
  } catch (...) {
    backend->release(mem);
    throw;
  }
  e.threshold_tables.emplace(key, mem);
  return mem;
}

// Validates a call and turns it into the backend's ConvCall.
apnn::ConvCall make_call(apnn_context_t ctx, const apnn_conv_args_t* args, bool need_output) {
  check_context(ctx);
  require_arg(args != nullptr, "args is NULL");
  check_tensor(ctx, args->x, "x");
  require_arg(args->w != nullptr, "w is NULL");
  require_arg(args->w->ctx == ctx, "w belongs to another context");
  const auto& x = args->x->matrix;
  const auto& w = args->w->weights;
  const int64_t groups = args->groups == 0 ? 1 : args->groups;
  require_arg(groups >= 1 && groups <= x.cols, "groups must be in 1..C = " + str(x.cols) + ", got " + str(groups));
  require_arg(x.cols % groups == 0 && w.out_channels % groups == 0,
              "groups = " + str(groups) + " must divide C = " + str(x.cols) + " and O = " + str(w.out_channels));
  require_arg(x.cols == w.channels * groups,
              groups == 1 ? "x has C = " + str(x.cols) + " channels but w has C = " + str(w.channels)
                          : "w has " + str(w.channels) + " channels per group, but x's C = " + str(x.cols) + " in " +
                                str(groups) + " groups needs " + str(x.cols / groups));

  apnn::ConvCall call;
  call.x = &x;
  call.w = &w;
  auto& g = call.geometry;
  g.batch = x.batch;
  g.height = x.height;
  g.width = x.width;
  g.channels = x.cols;
  g.groups = groups;
  g.out_channels = w.out_channels;
  g.kh = w.kh;
  g.kw = w.kw;
  require_arg(args->stride_h >= 1 && args->stride_h <= 16 && args->stride_w >= 1 && args->stride_w <= 16,
              "stride must be in 1..16, got " + str(args->stride_h) + " x " + str(args->stride_w));
  require_arg(args->pad_h >= 0 && args->pad_h < w.kh && args->pad_w >= 0 && args->pad_w < w.kw,
              "padding must be in 0..kernel-1, got " + str(args->pad_h) + " x " + str(args->pad_w) + " for a " +
                  str(w.kh) + " x " + str(w.kw) + " kernel");
  g.stride_h = args->stride_h;
  g.stride_w = args->stride_w;
  g.pad_h = args->pad_h;
  g.pad_w = args->pad_w;
  require_arg(x.height + 2 * g.pad_h >= w.kh && x.width + 2 * g.pad_w >= w.kw,
              "the " + str(w.kh) + " x " + str(w.kw) + " kernel does not fit the padded " + str(x.height) + " x " +
                  str(x.width) + " input");
  g.out_h = (x.height + 2 * g.pad_h - w.kh) / g.stride_h + 1;
  g.out_w = (x.width + 2 * g.pad_w - w.kw) / g.stride_w + 1;
  g.pooled_h = g.out_h;
  g.pooled_w = g.out_w;

  const double bound = static_cast<double>(w.kh * w.kw * w.channels) * apnn::max_abs_real(x.quant) *
                       apnn::max_abs_real(w.quant);
  require(bound <= std::numeric_limits<int32_t>::max(), APNN_STATUS_UNSUPPORTED,
          "KH*KW*C * max|x| * max|w| = " + str(static_cast<int64_t>(bound)) + " could overflow the int32 output");

  if (args->epilogue) {
    require_arg(args->epilogue->ctx == ctx, "epilogue belongs to another context");
    require_arg(args->epilogue->channels == w.out_channels,
                "epilogue is for " + str(args->epilogue->channels) + " channels, the convolution has O = " +
                    str(w.out_channels));
    call.has_epilogue = true;
    call.epilogue = args->epilogue->params;
    if (call.epilogue.pool != APNN_POOL_NONE) {
      const int64_t k = call.epilogue.pool_size, s = call.epilogue.pool_stride;
      require_arg(g.out_h >= k && g.out_w >= k, "the " + str(k) + " x " + str(k) + " pooling window does not fit the " +
                                                     str(g.out_h) + " x " + str(g.out_w) + " convolution output");
      g.pooled_h = (g.out_h - k) / s + 1;
      g.pooled_w = (g.out_w - k) / s + 1;
    }
  }

  // Residual: only with an epilogue, of the pre-pooling output shape.
  require_arg(!(args->residual && args->residual_int32), "give at most one residual (packed or int32)");
  if (args->residual || args->residual_int32) {
    require_arg(call.has_epilogue, "a residual needs an epilogue");
    auto& r = call.residual;
    r.channels = g.out_channels;
    if (args->residual) {
      check_tensor(ctx, args->residual, "residual");
      const auto& rm = args->residual->matrix;
      require_arg(rm.batch == g.batch && rm.height == g.out_h && rm.width == g.out_w && rm.cols == g.out_channels,
                  "residual has shape " + shape_str(rm.batch, rm.height, rm.width, rm.cols) + ", expected " +
                      shape_str(g.batch, g.out_h, g.out_w, g.out_channels));
      r.planes = rm.planes_mem;
      r.rows_padded = rm.rows_padded;
      r.words = rm.words;
      r.bits = rm.quant.bits;
      for (int i = 0; i < r.bits; ++i) r.coefficient[i] = apnn::plane_coefficient(i, r.bits, rm.quant.encoding);
      r.real_offset = static_cast<int32_t>(apnn::real_offset(rm.quant));
    } else {
      check_buffer(ctx, args->residual_int32, "residual_int32");
      const size_t bytes = static_cast<size_t>(g.out_pixels() * g.out_channels) * sizeof(int32_t);
      require_arg(args->residual_int32->bytes >= bytes, "residual_int32 holds " + str(args->residual_int32->bytes) +
                                                            " bytes, " + str(bytes) + " needed");
      r.int32_values = static_cast<const int32_t*>(args->residual_int32->mem);
    }
  }

  if (!need_output) return call;
  require_arg((args->y != nullptr) != (args->y_packed != nullptr), "give exactly one output: y or y_packed");
  if (args->y) {
    check_buffer(ctx, args->y, "y");
    const size_t bytes = static_cast<size_t>(g.pooled_pixels() * g.out_channels) * 4;
    require_arg(args->y->bytes >= bytes, "y holds " + str(args->y->bytes) + " bytes, " + str(bytes) + " needed");
    call.y_mem = args->y->mem;
  } else {
    require_arg(call.has_epilogue, "a packed output needs an epilogue (it re-quantizes)");
    check_tensor(ctx, args->y_packed, "y_packed");
    auto& ym = args->y_packed->matrix;
    require_arg(ym.batch == g.batch && ym.height == g.pooled_h && ym.width == g.pooled_w && ym.cols == g.out_channels,
                "y_packed has shape " + shape_str(ym.batch, ym.height, ym.width, ym.cols) + ", expected " +
                    shape_str(g.batch, g.pooled_h, g.pooled_w, g.out_channels));
    require_arg(args->y_packed != args->x && args->y_packed != args->residual,
                "y_packed must not be the input or the residual");
    call.y_packed = &ym;
    // The CUDA kernels compare y against a threshold table instead of running the float steps
    // (same codes; the host backend keeps the plain arithmetic); with a packed residual of few
    // bits, one table per residual code. An int32 residual keeps the float steps.
    const apnn::OutputQuant oq = apnn::output_quant(ym.quant);
    const apnn_quant_t* residual = args->residual ? &args->residual->matrix.quant : nullptr;
    const int residual_bits = call.residual.int32_values ? -1 : residual ? residual->bits : 0;
    if (ctx->kind == APNN_BACKEND_CUDA &&
        apnn::thresholds_apply(call.epilogue, oq, residual_bits, static_cast<int64_t>(bound))) {
      call.epilogue.thresholds = threshold_table(*args->epilogue, oq, residual);
      call.epilogue.threshold_levels = apnn::threshold_levels(oq);
      call.epilogue.threshold_residual_codes = residual ? 1 << residual->bits : 0;
    }
  }
  return call;
}

void check_desc(const apnn_epilogue_desc_t* d) {
  require_arg(d != nullptr, "desc is NULL");
  require_arg(d->channels >= 1 && d->channels <= kMaxDim, "channels must be in 1.." + str(kMaxDim));
  auto finite = [](float v) { return std::isfinite(v); };
  for (int64_t o = 0; o < d->channels; ++o) {
    require_arg(!d->scale || finite(d->scale[o]), "scale[" + str(o) + "] is not finite");
    require_arg(!d->bias || finite(d->bias[o]), "bias[" + str(o) + "] is not finite");
  }
  require_arg(finite(d->residual_scale), "residual_scale is not finite");
  require_arg(d->activation >= APNN_ACTIVATION_NONE && d->activation <= APNN_ACTIVATION_CLIP,
              "unknown activation " + str(static_cast<int>(d->activation)));
  if (d->activation == APNN_ACTIVATION_CLIP)
    require_arg(finite(d->clip_lo) && finite(d->clip_hi) && d->clip_lo <= d->clip_hi,
                "clip bounds must be finite with clip_lo <= clip_hi");
  require_arg(d->pool >= APNN_POOL_NONE && d->pool <= APNN_POOL_AVG, "unknown pool " + str(static_cast<int>(d->pool)));
  if (d->pool != APNN_POOL_NONE) {
    require_arg(d->pool_size == 2 || d->pool_size == 3, "pool_size must be 2 or 3, got " + str(d->pool_size));
    require_arg(d->pool_stride >= 1 && d->pool_stride <= d->pool_size,
                "pool_stride must be in 1..pool_size, got " + str(d->pool_stride));
  }
  require_arg(finite(d->out_scale) && d->out_scale > 0.0f, "out_scale must be a finite number > 0");
}

}  // namespace

extern "C" {

apnn_status_t apnn_pack_nhwc(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype, int64_t n, int64_t h, int64_t w,
                             int64_t c, const apnn_quant_t* quant, apnn_packed_t* packed) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(codes != nullptr && packed != nullptr, "codes or packed is NULL");
    const size_t size = code_size(dtype);
    const int64_t dims[] = {n, h, w, c};
    static const char* const names[] = {"n", "h", "w", "c"};
    check_dims("shape", dims, names, 4);
    apnn::validate_quant(quant, "quant");
    apnn_packed* p = new_tensor(ctx, n, h, w, c, *quant);
    try {
      const size_t bytes = static_cast<size_t>(p->matrix.rows * c) * size;
      Scratch staging(ctx->backend.get(), bytes);
      ctx->backend->write(staging.mem, codes, bytes);
      ctx->backend->pack(staging.mem, dtype, p->matrix);
    } catch (...) {
      apnn::free_packed(p);
      throw;
    }
    ctx->live_objects++;
    *packed = p;
  });
}

apnn_status_t apnn_packed_create_nhwc(apnn_context_t ctx, int64_t n, int64_t h, int64_t w, int64_t c,
                                      const apnn_quant_t* quant, apnn_packed_t* packed) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(packed != nullptr, "packed is NULL");
    const int64_t dims[] = {n, h, w, c};
    static const char* const names[] = {"n", "h", "w", "c"};
    check_dims("shape", dims, names, 4);
    apnn::validate_quant(quant, "quant");
    *packed = new_tensor(ctx, n, h, w, c, *quant);
    ctx->live_objects++;
  });
}

apnn_status_t apnn_packed_tensor_shape(apnn_packed_t packed, int64_t shape[4]) {
  return guarded(__func__, [&] {
    require_arg(packed != nullptr && shape != nullptr, "packed or shape is NULL");
    const auto held = lock_context(packed->ctx);
    const auto& m = packed->matrix;
    require_arg(m.batch > 0, "packed is a plain matrix, not an NHWC tensor");
    shape[0] = m.batch;
    shape[1] = m.height;
    shape[2] = m.width;
    shape[3] = m.cols;
  });
}

apnn_status_t apnn_pack_conv_weights(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype, int64_t o, int64_t kh,
                                     int64_t kw, int64_t c, const apnn_quant_t* quant, apnn_conv_weights_t* weights) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(codes != nullptr && weights != nullptr, "codes or weights is NULL");
    code_size(dtype);
    const int64_t dims[] = {o, kh, kw, c};
    static const char* const names[] = {"o", "kh", "kw", "c"};
    check_dims("shape", dims, names, 4);
    require_arg(kh <= kMaxKernel && kw <= kMaxKernel, "kernel size must be at most 15 x 15, got " + str(kh) + " x " +
                                                          str(kw));
    require_arg(kh * kw * c * 256 <= std::numeric_limits<int32_t>::max(),
                "KH*KW*C = " + str(kh * kw * c) + " is too large for the int32 sums");
    apnn::validate_quant(quant, "quant");
    auto obj = std::make_unique<apnn_conv_weights>();
    obj->ctx = ctx;
    auto& w = obj->weights;
    w.out_channels = o;
    w.kh = kh;
    w.kw = kw;
    w.channels = c;
    w.rows_padded = apnn::round_up(o, apnn::kRowAlign);
    w.channel_words = apnn::round_up(c, apnn::kKAlignBits) / 32;
    w.words = kh * kw * w.channel_words;
    w.quant = *quant;
    std::vector<uint32_t> planes;
    std::vector<int32_t> sat;
    apnn::pack_conv_weights_host(codes, dtype, w, planes, sat);
    auto* backend = ctx->backend.get();
    try {
      w.planes_mem = static_cast<uint32_t*>(backend->allocate(planes.size() * sizeof(uint32_t)));
      w.tap_sat_mem = static_cast<int32_t*>(backend->allocate(sat.size() * sizeof(int32_t)));
      backend->write(w.planes_mem, planes.data(), planes.size() * sizeof(uint32_t));
      backend->write(w.tap_sat_mem, sat.data(), sat.size() * sizeof(int32_t));
    } catch (...) {
      backend->release(w.planes_mem);
      backend->release(w.tap_sat_mem);
      throw;
    }
    ctx->live_objects++;
    *weights = obj.release();
  });
}

apnn_status_t apnn_conv_weights_destroy(apnn_conv_weights_t weights) {
  return guarded(__func__, [&] {
    require_arg(weights != nullptr, "weights is NULL");
    const auto held = lock_context(weights->ctx);
    weights->ctx->backend->release(weights->weights.planes_mem);
    weights->ctx->backend->release(weights->weights.tap_sat_mem);
    weights->ctx->live_objects--;
    delete weights;
  });
}

apnn_status_t apnn_conv_weights_info(apnn_conv_weights_t weights, int64_t shape[4], apnn_quant_t* quant) {
  return guarded(__func__, [&] {
    require_arg(weights != nullptr, "weights is NULL");
    const auto held = lock_context(weights->ctx);
    const auto& w = weights->weights;
    if (shape) {
      shape[0] = w.out_channels;
      shape[1] = w.kh;
      shape[2] = w.kw;
      shape[3] = w.channels;
    }
    if (quant) *quant = w.quant;
  });
}

apnn_status_t apnn_epilogue_create(apnn_context_t ctx, const apnn_epilogue_desc_t* desc, apnn_epilogue_t* epilogue) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(epilogue != nullptr, "epilogue is NULL");
    check_desc(desc);
    const size_t n = static_cast<size_t>(desc->channels);
    std::vector<float> scale(n, 1.0f), bias(n, 0.0f);
    if (desc->scale) std::memcpy(scale.data(), desc->scale, n * sizeof(float));
    if (desc->bias) std::memcpy(bias.data(), desc->bias, n * sizeof(float));
    auto obj = std::make_unique<apnn_epilogue>();
    obj->ctx = ctx;
    obj->channels = desc->channels;
    obj->scale_host = scale;
    obj->bias_host = bias;
    auto& e = obj->params;
    auto* backend = ctx->backend.get();
    float* scale_mem = nullptr;
    float* bias_mem = nullptr;
    try {
      scale_mem = static_cast<float*>(backend->allocate(n * sizeof(float)));
      bias_mem = static_cast<float*>(backend->allocate(n * sizeof(float)));
      backend->write(scale_mem, scale.data(), n * sizeof(float));
      backend->write(bias_mem, bias.data(), n * sizeof(float));
    } catch (...) {
      backend->release(scale_mem);
      backend->release(bias_mem);
      throw;
    }
    e.scale = scale_mem;
    e.bias = bias_mem;
    e.residual_scale = desc->residual_scale;
    e.activation = desc->activation;
    e.clip_lo = desc->clip_lo;
    e.clip_hi = desc->clip_hi;
    e.pool = desc->pool;
    e.pool_size = desc->pool == APNN_POOL_NONE ? 1 : desc->pool_size;
    e.pool_stride = desc->pool == APNN_POOL_NONE ? 1 : desc->pool_stride;
    e.out_scale = desc->out_scale;
    ctx->live_objects++;
    *epilogue = obj.release();
  });
}

apnn_status_t apnn_epilogue_destroy(apnn_epilogue_t epilogue) {
  return guarded(__func__, [&] {
    require_arg(epilogue != nullptr, "epilogue is NULL");
    const auto held = lock_context(epilogue->ctx);
    auto* backend = epilogue->ctx->backend.get();
    backend->release(const_cast<float*>(epilogue->params.scale));
    backend->release(const_cast<float*>(epilogue->params.bias));
    for (auto& entry : epilogue->threshold_tables) backend->release(entry.second);
    epilogue->ctx->live_objects--;
    delete epilogue;
  });
}

apnn_status_t apnn_conv2d_output_shape(apnn_context_t ctx, const apnn_conv_args_t* args, int64_t shape[4],
                                       int64_t pooled[4]) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    const apnn::ConvCall call = make_call(ctx, args, false);
    const auto& g = call.geometry;
    if (shape) {
      shape[0] = g.batch;
      shape[1] = g.out_h;
      shape[2] = g.out_w;
      shape[3] = g.out_channels;
    }
    if (pooled) {
      pooled[0] = g.batch;
      pooled[1] = g.pooled_h;
      pooled[2] = g.pooled_w;
      pooled[3] = g.out_channels;
    }
  });
}

apnn_status_t apnn_conv2d(apnn_context_t ctx, const apnn_conv_args_t* args) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    const apnn::ConvCall call = make_call(ctx, args, true);
    ctx->backend->conv2d(call);
  });
}

apnn_status_t apnn_conv2d_benchmark(apnn_context_t ctx, const apnn_conv_args_t* args, int32_t warmup, int32_t iters,
                                    double* microseconds) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    const apnn::ConvCall call = make_call(ctx, args, true);
    require_arg(microseconds != nullptr, "microseconds is NULL");
    require_arg(warmup >= 0 && iters >= 1, "need warmup >= 0 and iters >= 1");
    *microseconds = ctx->backend->benchmark([&] { ctx->backend->conv2d(call); }, warmup, iters);
  });
}

apnn_status_t apnn_conv2d_kernel_name(apnn_context_t ctx, const apnn_conv_args_t* args, char* name,
                                      size_t capacity) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    const apnn::ConvCall call = make_call(ctx, args, true);
    require_arg(name != nullptr && capacity > 0, "name is NULL or capacity is 0");
    const std::string s = ctx->backend->conv2d_kernel_name(call);
    std::strncpy(name, s.c_str(), capacity - 1);
    name[capacity - 1] = '\0';
  });
}

apnn_status_t apnn_context_set_conv_override(apnn_context_t ctx, int32_t split_k, int32_t fuse) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    check_context(ctx);
    require_arg(split_k >= 0 && split_k <= 64, "split_k must be 0 (automatic) or 1..64, got " + str(split_k));
    apnn::ConvOverride choice;
    choice.split_k = split_k;
    choice.fuse = fuse != 0;
    ctx->backend->set_conv_override(choice);
  });
}

}  // extern "C"
