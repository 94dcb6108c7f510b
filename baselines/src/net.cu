// Networks on CUTLASS GEMMs: the host-side plan and the small own kernels (input
// conversion, im2col, fused bias/residual/activation/requantization epilogue, pooling).
#include "net.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace apnnb {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- Element conversions --------------------------------------------------------------
template <typename T>
__device__ __forceinline__ float to_f(T v);
template <>
__device__ __forceinline__ float to_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f<int8_t>(int8_t v) { return static_cast<float>(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ int8_t from_f<int8_t>(float v) {
  return static_cast<int8_t>(fminf(fmaxf(rintf(v), -128.0f), 127.0f));
}

template <typename T>
__device__ __forceinline__ T tmax(T a, T b) { return a > b ? a : b; }
template <>
__device__ __forceinline__ __half tmax<__half>(__half a, __half b) { return __hgt(a, b) ? a : b; }

// ---- Kernels ----------------------------------------------------------------------------
template <typename T>
__global__ void convert_input(const float* in, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = from_f<T>(in[i]);
}

// Packs the sign bits (x >= 0) of `pixels` x c floats into words(c) 32-bit words per pixel.
__global__ void pack_input_bits(const float* in, uint32_t* out, int64_t pixels, int c, int wc) {
  const int64_t n = pixels * wc;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = i / wc;
    const int w = static_cast<int>(i % wc);
    uint32_t word = 0;
    for (int b = 0; b < 32; ++b) {
      const int ch = w * 32 + b;
      if (ch < c && in[p * c + ch] >= 0.0f) word |= 1u << b;
    }
    out[i] = word;
  }
}

// im2col over storage units: row (n, oy, ox) holds kh x kw taps of `cu` units each, then
// zeros up to k_gemm. Out-of-image taps are zero units.
template <typename T>
__global__ void im2col(const T* in, T* out, int h, int w, int cu, int kh, int kw, int stride, int pad, int oh,
                       int ow, int64_t rows, int64_t k_gemm) {
  const int64_t k_units = (int64_t)kh * kw * cu;
  const int64_t n = rows * k_gemm;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / k_gemm;
    const int64_t k = i % k_gemm;
    T v = T(0);
    if (k < k_units) {
      const int tap = static_cast<int>(k / cu);
      const int cc = static_cast<int>(k % cu);
      const int ky = tap / kw, kx = tap % kw;
      const int ox = static_cast<int>(row % ow);
      const int oy = static_cast<int>((row / ow) % oh);
      const int64_t img = row / ((int64_t)ow * oh);
      const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
      if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = in[((img * h + iy) * w + ix) * cu + cc];
    }
    out[i] = v;
  }
}

template <typename T>
__device__ __forceinline__ float residual_value(const void* res, int64_t idx, int o, int c_res) {
  return to_f<T>(static_cast<const T*>(res)[idx]);
}

// Popcount of each of `rows` rows of `words` 32-bit words (one warp per row): popc(a) of the
// BNN GEMM's A rows for the AND-popc path. Padding bits are 0 and count nowhere.
__global__ void popc_rows(const uint32_t* a, int32_t* out, int64_t rows, int64_t words) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
  // blockDim.x is a multiple of 32, so all lanes of a warp share `r` (full-mask shuffles are safe).
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    int s = 0;
    for (int64_t w = lane; w < words; w += 32) s += __popc(a[r * words + w]);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) out[r] = s;
  }
}

// The +-1 dot product of BNN GEMM row `row` and weight row `ch` of real length k_real.
// XOR path (a_popc == nullptr): acc = popc(a XOR b), dot = K - 2 acc.
// AND path: acc = popc(a AND b), dot = 4 acc - 2 popc(a) - 2 popc(b) + K (exact: +1/+1 pairs are
// acc, -1/-1 pairs K - popc(a) - popc(b) + acc, dot = 2 * matches - K).
__device__ __forceinline__ int64_t bnn_dot(int32_t acc, int64_t k_real, const int32_t* a_popc,
                                           const int32_t* w_popc, int64_t row, int ch) {
  if (a_popc) return 4 * static_cast<int64_t>(acc) - 2 * static_cast<int64_t>(a_popc[row]) -
                     2 * static_cast<int64_t>(w_popc[ch]) + k_real;
  return k_real - 2 * static_cast<int64_t>(acc);
}

// y = acc (* scale) + bias (+ residual), ReLU; stored as TOut (float for the last layer).
// Acc is float (FP32 / FP16) or int32 (INT8, and BNN where it is popc(x XOR w), or popc(x AND w)
// with a_popc / w_popc set).
template <typename Acc, typename TRes, typename TOut, bool kInt8, bool kBnn>
__global__ void epilogue(const Acc* acc, const float* bias, const void* res, TOut* out, int64_t m, int o,
                         float scale, int64_t k_real, int relu, const int32_t* a_popc, const int32_t* w_popc) {
  const int64_t n = m * o;
  const int wc = (o + 31) / 32;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int ch = static_cast<int>(i % o);
    float y;
    if (kBnn) {
      y = static_cast<float>(bnn_dot(static_cast<int32_t>(acc[i]), k_real, a_popc, w_popc, i / o, ch)) + bias[ch];
    } else if (kInt8) {
      y = __fadd_rn(__fmul_rn(static_cast<float>(acc[i]), scale), bias[ch]);
    } else {
      y = __fadd_rn(static_cast<float>(acc[i]), bias[ch]);
    }
    if (res) {
      if (kBnn) {
        const uint32_t* r = static_cast<const uint32_t*>(res);
        y = __fadd_rn(y, ((r[(i / o) * wc + ch / 32] >> (ch % 32)) & 1u) ? 1.0f : -1.0f);
      } else {
        y = __fadd_rn(y, to_f<TRes>(static_cast<const TRes*>(res)[i]));
      }
    }
    if (relu && !kBnn) y = fmaxf(y, 0.0f);
    out[i] = from_f<TOut>(y);
  }
}

// BNN hidden layers: bit = (dot + bias (+ residual)) >= 0, packed 32 channels a word.
__global__ void epilogue_bnn_pack(const int32_t* acc, const float* bias, const uint32_t* res, uint32_t* out,
                                  int64_t m, int o, int64_t k_real, const int32_t* a_popc, const int32_t* w_popc) {
  const int wc = (o + 31) / 32;
  const int64_t n = m * wc;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / wc;
    const int w = static_cast<int>(i % wc);
    uint32_t word = 0;
    const uint32_t rword = res ? res[i] : 0u;
    for (int b = 0; b < 32; ++b) {
      const int ch = w * 32 + b;
      if (ch >= o) break;
      float y = static_cast<float>(bnn_dot(acc[row * o + ch], k_real, a_popc, w_popc, row, ch)) + bias[ch];
      if (res) y = __fadd_rn(y, ((rword >> b) & 1u) ? 1.0f : -1.0f);
      if (y >= 0.0f) word |= 1u << b;
    }
    out[i] = word;
  }
}

// Max pooling over storage units (BNN: OR of the bits, i.e. the max of +-1).
template <typename T, bool kBits>
__global__ void maxpool(const T* in, T* out, int batch, int h, int w, int cu, int k, int stride, int pad, int oh,
                        int ow) {
  const int64_t n = (int64_t)batch * oh * ow * cu;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int cc = static_cast<int>(i % cu);
    const int ox = static_cast<int>((i / cu) % ow);
    const int oy = static_cast<int>((i / cu / ow) % oh);
    const int64_t img = i / ((int64_t)cu * ow * oh);
    T best = T(0);
    bool any = false;
    for (int ky = 0; ky < k; ++ky) {
      const int iy = oy * stride - pad + ky;
      if (iy < 0 || iy >= h) continue;
      for (int kx = 0; kx < k; ++kx) {
        const int ix = ox * stride - pad + kx;
        if (ix < 0 || ix >= w) continue;
        const T v = in[((img * h + iy) * w + ix) * cu + cc];
        if constexpr (kBits) {
          best = any ? (best | v) : v;
        } else {
          best = any ? tmax<T>(best, v) : v;
        }
        any = true;
      }
    }
    out[i] = best;
  }
}

// Global average pooling: sum / (h w) in float32.
template <typename T>
__global__ void avgpool(const T* in, T* out, int batch, int hw, int c) {
  const int64_t n = (int64_t)batch * c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    const int64_t img = i / c;
    float sum = 0.0f;
    for (int p = 0; p < hw; ++p) sum += to_f<T>(in[(img * hw + p) * c + ch]);
    out[i] = from_f<T>(sum / static_cast<float>(hw));
  }
}

// BNN global pooling: +1 when sum of +-1 values >= 0 (majority, ties to +1).
__global__ void avgpool_bits(const uint32_t* in, uint32_t* out, int batch, int hw, int c, int wc) {
  const int64_t n = (int64_t)batch * wc;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int w = static_cast<int>(i % wc);
    const int64_t img = i / wc;
    uint32_t word = 0;
    for (int b = 0; b < 32 && w * 32 + b < c; ++b) {
      int ones = 0;
      for (int p = 0; p < hw; ++p) ones += (in[(img * hw + p) * wc + w] >> b) & 1u;
      if (2 * ones - hw >= 0) word |= 1u << b;
    }
    out[i] = word;
  }
}

// ---- Host helpers ------------------------------------------------------------------------
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
float uniform01(uint64_t& s) { return static_cast<float>(splitmix(s) >> 40) * (1.0f / 16777216.0f); }

void check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

}  // namespace

// ---- Net -------------------------------------------------------------------------------------
size_t Net::elem_bytes() const {
  switch (precision_) {
    case APNNB_FP32: return 4;
    case APNNB_FP16: return 2;
    case APNNB_INT8: return 1;
    default: return 4;  // BNN: 32-bit words
  }
}

int64_t Net::units(int c) const { return precision_ == APNNB_BNN ? (c + 31) / 32 : c; }

size_t Net::act_bytes(int h, int w, int c) const { return static_cast<size_t>(h) * w * units(c) * elem_bytes(); }

Net::Net(apnnb_precision_t precision, int batch, int h, int w, int c, const apnnb_layer_t* layers, int count,
         uint64_t seed)
    : precision_(precision), batch_(batch), h_(h), w_(w), c_(c) {
  require_arg(precision >= APNNB_FP32 && precision <= APNNB_BNN, "precision must be FP32, FP16, INT8 or BNN");
  require_arg(batch >= 1 && h >= 1 && w >= 1 && c >= 1, "batch, height, width and channels must be >= 1");
  require_arg(layers != nullptr && count >= 1, "a network needs at least one layer");
  layers_.resize(count);
  size_t col_bytes = 0, acc_bytes = 0;
  for (int i = 0; i < count; ++i) {
    LayerPlan& L = layers_[i];
    const apnnb_layer_t& d = layers[i];
    const std::string at = "layer " + std::to_string(i) + ": ";
    L.desc = d;
    L.last = i == count - 1;
    require_arg(d.input == -1 || (d.input >= 0 && d.input < i), at + "input must be -1 or an earlier layer");
    L.src = d.input == -1 ? i - 1 : d.input;
    L.in_h = L.src < 0 ? h : layers_[L.src].out_h;
    L.in_w = L.src < 0 ? w : layers_[L.src].out_w;
    L.in_c = L.src < 0 ? c : layers_[L.src].out_c;
    switch (d.type) {
      case APNNB_LAYER_CONV:
      case APNNB_LAYER_FC: {
        require_arg(d.out_channels >= 8 && d.out_channels % 8 == 0, at + "out_channels must be a positive multiple of 8");
        if (d.type == APNNB_LAYER_CONV) {
          require_arg(d.kernel >= 1 && d.stride >= 1 && d.pad >= 0, at + "kernel, stride >= 1 and pad >= 0 needed");
          L.kh = L.kw = d.kernel;
          L.stride = d.stride;
          L.pad = d.pad;
        } else {
          L.kh = L.in_h;
          L.kw = L.in_w;
        }
        L.out_h = (L.in_h + 2 * L.pad - L.kh) / L.stride + 1;
        L.out_w = (L.in_w + 2 * L.pad - L.kw) / L.stride + 1;
        require_arg(L.in_h + 2 * L.pad >= L.kh && L.in_w + 2 * L.pad >= L.kw && L.out_h >= 1 && L.out_w >= 1,
                    at + "the kernel does not fit the input");
        L.out_c = d.out_channels;
        L.m = static_cast<int64_t>(batch) * L.out_h * L.out_w;
        L.k_real = static_cast<int64_t>(L.kh) * L.kw * L.in_c;
        L.k_units = static_cast<int64_t>(L.kh) * L.kw * units(L.in_c);
        L.k_gemm = round_up(L.k_units, precision == APNNB_BNN ? 4 : 16);
        require(L.m < (1ll << 31) && L.k_gemm * (precision == APNNB_BNN ? 32 : 1) < (1ll << 31),
                APNNB_STATUS_UNSUPPORTED, at + "GEMM too large for 32-bit CUTLASS coordinates");
        const bool one_by_one = L.kh == 1 && L.kw == 1 && L.stride == 1 && L.pad == 0;
        const bool whole = L.kh == L.in_h && L.kw == L.in_w && L.pad == 0;
        L.direct = (one_by_one || whole) && L.k_units == L.k_gemm;
        if (precision == APNNB_INT8) {
          require_arg(std::isfinite(d.scale) && d.scale >= 0.0f, at + "scale must be >= 0 (0: default)");
          L.scale = d.scale > 0.0f ? d.scale : 1.0f / (16.0f * std::sqrt(static_cast<float>(L.k_real)));
        }
        if (!L.direct) col_bytes = std::max(col_bytes, static_cast<size_t>(L.m * L.k_gemm) * elem_bytes());
        acc_bytes = std::max(acc_bytes, static_cast<size_t>(L.m) * L.out_c * 4);
        break;
      }
      case APNNB_LAYER_MAXPOOL:
        require_arg(d.kernel >= 1 && d.stride >= 1 && d.pad >= 0 && d.pad < d.kernel,
                    at + "maxpool needs kernel, stride >= 1 and 0 <= pad < kernel");
        L.kh = L.kw = d.kernel;
        L.stride = d.stride;
        L.pad = d.pad;
        require_arg(L.in_h + 2 * L.pad >= L.kh && L.in_w + 2 * L.pad >= L.kw, at + "the window does not fit the input");
        L.out_h = (L.in_h + 2 * L.pad - L.kh) / L.stride + 1;
        L.out_w = (L.in_w + 2 * L.pad - L.kw) / L.stride + 1;
        L.out_c = L.in_c;
        break;
      case APNNB_LAYER_AVGPOOL:
        L.out_h = L.out_w = 1;
        L.out_c = L.in_c;
        break;
      default:
        require_arg(false, at + "unknown layer type " + std::to_string(d.type));
    }
    require_arg(d.residual == -1 || (d.residual >= 0 && d.residual < i), at + "residual must be -1 or an earlier layer");
    if (d.residual >= 0) {
      const LayerPlan& R = layers_[d.residual];
      require_arg(d.type == APNNB_LAYER_CONV || d.type == APNNB_LAYER_FC, at + "only CONV and FC take a residual");
      require_arg(R.out_h == L.out_h && R.out_w == L.out_w && R.out_c == L.out_c,
                  at + "residual shape differs from the output shape");
    }
  }
  for (int i = 0; i < count; ++i) {
    if (layers_[i].desc.input >= 0 || layers_[i].desc.residual >= 0) {
      require_arg(layers_[i].src != count - 1 && layers_[i].desc.residual != count - 1, "the last layer feeds nothing");
    }
  }
  ensure_device();
  // CUTLASS's b1 XOR-popc mma is assert(0) on sm_90+: BNN layers use AND-popc and the identity there.
  bnn_and_ = precision == APNNB_BNN && !xor_popc_supported();
  stream_ = std::make_unique<Stream>();
  input_f32_.resize(static_cast<size_t>(batch) * h * w * c * sizeof(float));
  input_.resize(batch * act_bytes(h, w, c));
  col_.resize(col_bytes);
  acc_.resize(acc_bytes);
  if (bnn_and_) {
    int64_t max_m = 0;
    for (const LayerPlan& L : layers_) max_m = std::max(max_m, L.m);
    row_popc_.resize(static_cast<size_t>(max_m) * sizeof(int32_t));
  }
  for (int i = 0; i < count; ++i) {
    LayerPlan& L = layers_[i];
    const bool gemm = L.desc.type == APNNB_LAYER_CONV || L.desc.type == APNNB_LAYER_FC;
    const bool float_out = L.last && gemm;
    L.out.resize(float_out ? static_cast<size_t>(batch) * L.out_h * L.out_w * L.out_c * sizeof(float)
                           : batch * act_bytes(L.out_h, L.out_w, L.out_c));
    if (!gemm) continue;
    L.weights.resize(static_cast<size_t>(L.out_c) * L.k_gemm * elem_bytes());
    L.bias.resize(static_cast<size_t>(L.out_c) * sizeof(float));
    if (bnn_and_) L.weight_popc.resize(static_cast<size_t>(L.out_c) * sizeof(int32_t));
    // Default weights: He-uniform (FP), integer codes in [-63, 63] (INT8), random signs (BNN).
    uint64_t s = seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(i + 1) * 0x9e3779b97f4a7c15ull;
    std::vector<float> wts(static_cast<size_t>(L.out_c) * L.k_real);
    const float a = std::sqrt(6.0f / static_cast<float>(L.k_real));
    for (float& v : wts) {
      const float u = uniform01(s) * 2.0f - 1.0f;
      v = precision_ == APNNB_FP32 || precision_ == APNNB_FP16 ? u * a : precision_ == APNNB_INT8 ? std::rint(u * 63.0f) : u;
    }
    set_params(i, wts.data(), static_cast<int64_t>(wts.size()), nullptr, 0);
  }
}

void Net::layer_shape(int layer, int* h, int* w, int* c) const {
  require_arg(layer >= 0 && layer < static_cast<int>(layers_.size()), "layer index out of range");
  const LayerPlan& L = layers_[layer];
  if (h) *h = L.out_h;
  if (w) *w = L.out_w;
  if (c) *c = L.out_c;
}

void Net::set_params(int layer, const float* weights, int64_t weight_count, const float* bias, int64_t bias_count) {
  require_arg(layer >= 0 && layer < static_cast<int>(layers_.size()), "layer index out of range");
  LayerPlan& L = layers_[layer];
  require_arg(L.desc.type == APNNB_LAYER_CONV || L.desc.type == APNNB_LAYER_FC,
              "layer " + std::to_string(layer) + " is a pool and has no parameters");
  require_arg(weights != nullptr, "weights must not be NULL");
  require_arg(weight_count == L.out_c * L.k_real,
              "layer " + std::to_string(layer) + " needs " + std::to_string(L.out_c * L.k_real) + " weights, got " +
                  std::to_string(weight_count));
  require_arg(bias == nullptr ? bias_count == 0 : bias_count == L.out_c,
              "bias must be NULL (count 0) or hold out_channels = " + std::to_string(L.out_c) + " values");
  const int64_t taps = static_cast<int64_t>(L.kh) * L.kw;
  const int cin = L.in_c;
  const int64_t ucin = units(cin);
  std::vector<unsigned char> host(static_cast<size_t>(L.out_c) * L.k_gemm * elem_bytes(), 0);
  for (int64_t o = 0; o < L.out_c; ++o) {
    for (int64_t t = 0; t < taps; ++t) {
      for (int ch = 0; ch < cin; ++ch) {
        const float v = weights[(o * taps + t) * cin + ch];
        require_arg(std::isfinite(v), "weights must be finite");
        const int64_t row = o * L.k_gemm;
        switch (precision_) {
          case APNNB_FP32: reinterpret_cast<float*>(host.data())[row + t * cin + ch] = v; break;
          case APNNB_FP16: reinterpret_cast<__half*>(host.data())[row + t * cin + ch] = __float2half_rn(v); break;
          case APNNB_INT8:
            reinterpret_cast<int8_t*>(host.data())[row + t * cin + ch] =
                static_cast<int8_t>(std::min(127.0f, std::max(-128.0f, std::rint(v))));
            break;
          default:
            if (v >= 0.0f) reinterpret_cast<uint32_t*>(host.data())[row + t * ucin + ch / 32] |= 1u << (ch % 32);
        }
      }
    }
  }
  std::vector<float> b(L.out_c, 0.0f);
  if (bias) {
    for (int o = 0; o < L.out_c; ++o) {
      require_arg(std::isfinite(bias[o]), "biases must be finite");
      b[o] = bias[o];
    }
  }
  L.weights.upload(host.data(), host.size());
  L.bias.upload(b.data(), b.size() * sizeof(float));
  if (bnn_and_) {  // popc(b) per weight row, once per set of weights (padding bits are 0)
    std::vector<int32_t> pop(L.out_c, 0);
    const uint32_t* words = reinterpret_cast<const uint32_t*>(host.data());
    for (int64_t o = 0; o < L.out_c; ++o) {
      int32_t sum = 0;
      for (int64_t j = 0; j < L.k_gemm; ++j) sum += static_cast<int32_t>(__builtin_popcount(words[o * L.k_gemm + j]));
      pop[o] = sum;
    }
    L.weight_popc.upload(pop.data(), pop.size() * sizeof(int32_t));
  }
}

void Net::launch_layer(int index) {
  LayerPlan& L = layers_[index];
  cudaStream_t st = stream_->get();
  const void* src = L.src < 0 ? input_.get() : layers_[L.src].out.get();
  const int cu = static_cast<int>(units(L.in_c));
  const apnnb_layer_t& d = L.desc;
  if (d.type == APNNB_LAYER_MAXPOOL || d.type == APNNB_LAYER_AVGPOOL) {
    const int64_t n = static_cast<int64_t>(batch_) * L.out_h * L.out_w * cu;
    if (d.type == APNNB_LAYER_MAXPOOL) {
#define APNNB_MAXPOOL(T, BITS)                                                                                   \
  maxpool<T, BITS><<<blocks_for(n), kThreads, 0, st>>>(static_cast<const T*>(src), L.out.as<T>(), batch_, L.in_h, \
                                                      L.in_w, cu, L.kh, L.stride, L.pad, L.out_h, L.out_w)
      switch (precision_) {
        case APNNB_FP32: APNNB_MAXPOOL(float, false); break;
        case APNNB_FP16: APNNB_MAXPOOL(__half, false); break;
        case APNNB_INT8: APNNB_MAXPOOL(int8_t, false); break;
        default: APNNB_MAXPOOL(uint32_t, true);
      }
#undef APNNB_MAXPOOL
      check_launch("maxpool");
    } else {
      const int hw = L.in_h * L.in_w;
      const int64_t m = static_cast<int64_t>(batch_) * L.out_c;
      switch (precision_) {
        case APNNB_FP32: avgpool<float><<<blocks_for(m), kThreads, 0, st>>>(static_cast<const float*>(src), L.out.as<float>(), batch_, hw, L.out_c); break;
        case APNNB_FP16: avgpool<__half><<<blocks_for(m), kThreads, 0, st>>>(static_cast<const __half*>(src), L.out.as<__half>(), batch_, hw, L.out_c); break;
        case APNNB_INT8: avgpool<int8_t><<<blocks_for(m), kThreads, 0, st>>>(static_cast<const int8_t*>(src), L.out.as<int8_t>(), batch_, hw, L.out_c); break;
        default: avgpool_bits<<<blocks_for(n), kThreads, 0, st>>>(static_cast<const uint32_t*>(src), L.out.as<uint32_t>(), batch_, hw, L.out_c, cu);
      }
      check_launch("avgpool");
    }
    return;
  }
  // CONV / FC: A operand (im2col unless the input already is A), CUTLASS GEMM, epilogue.
  const void* a = src;
  if (!L.direct) {
    const int64_t n = L.m * L.k_gemm;
#define APNNB_IM2COL(T)                                                                                          \
  im2col<T><<<blocks_for(n), kThreads, 0, st>>>(static_cast<const T*>(src), col_.as<T>(), L.in_h, L.in_w, cu, L.kh, \
                                               L.kw, L.stride, L.pad, L.out_h, L.out_w, L.m, L.k_gemm)
    switch (precision_) {
      case APNNB_FP32: APNNB_IM2COL(float); break;
      case APNNB_FP16: APNNB_IM2COL(__half); break;
      case APNNB_INT8: APNNB_IM2COL(int8_t); break;
      default: APNNB_IM2COL(uint32_t);
    }
#undef APNNB_IM2COL
    check_launch("im2col");
    a = col_.get();
  }
  const int m = static_cast<int>(L.m), o = L.out_c, k = static_cast<int>(L.k_gemm);
  switch (precision_) {
    case APNNB_FP32: gemm_f32(m, o, k, static_cast<const float*>(a), L.weights.as<float>(), acc_.as<float>(), st); break;
    case APNNB_FP16: gemm_f16(m, o, k, static_cast<const __half*>(a), L.weights.as<__half>(), acc_.as<float>(), st); break;
    case APNNB_INT8: gemm_s8(m, o, k, static_cast<const int8_t*>(a), L.weights.as<int8_t>(), acc_.as<int32_t>(), st); break;
    default:
      if (bnn_and_) {
        popc_rows<<<blocks_for(L.m * 32), kThreads, 0, st>>>(static_cast<const uint32_t*>(a), row_popc_.as<int32_t>(),
                                                              L.m, L.k_gemm);
        check_launch("row popcount");
        gemm_b1_and(m, o, k * 32, a, L.weights.get(), acc_.as<int32_t>(), st);
      } else {
        gemm_b1_xor(m, o, k * 32, a, L.weights.get(), acc_.as<int32_t>(), st);
      }
  }
  const int32_t* a_popc = bnn_and_ ? row_popc_.as<int32_t>() : nullptr;
  const int32_t* w_popc = bnn_and_ ? L.weight_popc.as<int32_t>() : nullptr;
  const void* res = d.residual >= 0 ? layers_[d.residual].out.get() : nullptr;
  const int64_t n = L.m * o;
  const float* bias = L.bias.as<float>();
  const int relu = d.relu != 0;
  if (precision_ == APNNB_BNN && !L.last) {
    const int64_t nw = L.m * units(o);
    epilogue_bnn_pack<<<blocks_for(nw), kThreads, 0, st>>>(acc_.as<int32_t>(), bias, static_cast<const uint32_t*>(res),
                                                          L.out.as<uint32_t>(), L.m, o, L.k_real, a_popc, w_popc);
    check_launch("epilogue");
    return;
  }
#define APNNB_EPI(ACC, TRES, TOUT, I8, BNN)                                                                        \
  epilogue<ACC, TRES, TOUT, I8, BNN><<<blocks_for(n), kThreads, 0, st>>>(acc_.as<ACC>(), bias, res, L.out.as<TOUT>(), \
                                                                        L.m, o, L.scale, L.k_real, relu, a_popc, w_popc)
  switch (precision_) {
    case APNNB_FP32: APNNB_EPI(float, float, float, false, false); break;
    case APNNB_FP16:
      if (L.last) APNNB_EPI(float, __half, float, false, false); else APNNB_EPI(float, __half, __half, false, false);
      break;
    case APNNB_INT8:
      if (L.last) APNNB_EPI(int32_t, int8_t, float, true, false); else APNNB_EPI(int32_t, int8_t, int8_t, true, false);
      break;
    default: APNNB_EPI(int32_t, float, float, false, true);
  }
#undef APNNB_EPI
  check_launch("epilogue");
}

void Net::forward() {
  cudaStream_t st = stream_->get();
  const int64_t pixels = static_cast<int64_t>(batch_) * h_ * w_;
  const int64_t n = pixels * c_;
  switch (precision_) {
    case APNNB_FP32:
      APNNB_CUDA_CHECK(cudaMemcpyAsync(input_.get(), input_f32_.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, st));
      break;
    case APNNB_FP16: convert_input<__half><<<blocks_for(n), kThreads, 0, st>>>(input_f32_.as<float>(), input_.as<__half>(), n); break;
    case APNNB_INT8: convert_input<int8_t><<<blocks_for(n), kThreads, 0, st>>>(input_f32_.as<float>(), input_.as<int8_t>(), n); break;
    default:
      pack_input_bits<<<blocks_for(pixels * units(c_)), kThreads, 0, st>>>(input_f32_.as<float>(), input_.as<uint32_t>(),
                                                                           pixels, c_, static_cast<int>(units(c_)));
  }
  check_launch("input conversion");
  for (size_t i = 0; i < layers_.size(); ++i) launch_layer(static_cast<int>(i));
}

void Net::run(const float* input, int64_t input_count, float* output, int64_t output_count, int warmup, int iters,
              double* microseconds) {
  const LayerPlan& last = layers_.back();
  const int64_t in_n = static_cast<int64_t>(batch_) * h_ * w_ * c_;
  const int64_t out_n = static_cast<int64_t>(batch_) * last.out_h * last.out_w * last.out_c;
  require_arg(input != nullptr && input_count == in_n, "input must hold batch*height*width*channels = " +
                                                           std::to_string(in_n) + " floats");
  require_arg(output == nullptr || output_count == out_n,
              "output must hold " + std::to_string(out_n) + " floats (the last layer's output)");
  require_arg(warmup >= 0 && iters >= 0, "warmup and iters must be >= 0");
  require_arg(iters == 0 || microseconds != nullptr, "microseconds must not be NULL when iters > 0");
  for (int64_t i = 0; i < in_n; ++i) require_arg(std::isfinite(input[i]), "input values must be finite");
  input_f32_.upload(input, in_n * sizeof(float));
  if (iters > 0) {
    *microseconds = benchmark([this] { forward(); }, stream_->get(), warmup, iters);
  }
  forward();
  stream_->synchronize();
  if (!output) return;
  const bool gemm_last = last.desc.type == APNNB_LAYER_CONV || last.desc.type == APNNB_LAYER_FC;
  if (gemm_last || precision_ == APNNB_FP32) {
    last.out.download(output, out_n * sizeof(float));
    return;
  }
  std::vector<unsigned char> raw(last.out.bytes());
  last.out.download(raw.data(), raw.size());
  for (int64_t i = 0; i < out_n; ++i) {
    switch (precision_) {
      case APNNB_FP16: output[i] = __half2float(reinterpret_cast<const __half*>(raw.data())[i]); break;
      case APNNB_INT8: output[i] = static_cast<float>(reinterpret_cast<const int8_t*>(raw.data())[i]); break;
      default: {
        const int64_t pix = i / last.out_c;
        const int ch = static_cast<int>(i % last.out_c);
        const uint32_t word = reinterpret_cast<const uint32_t*>(raw.data())[pix * units(last.out_c) + ch / 32];
        output[i] = ((word >> (ch % 32)) & 1u) ? 1.0f : -1.0f;
      }
    }
  }
}

}  // namespace apnnb
