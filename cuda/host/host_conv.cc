// Host convolution: the same packed layouts and the same rank-1 corrections as the CUDA
// kernels, written as plain loops; then the epilogue through the shared common/epilogue.h.
#include "host/host_conv.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "common/epilogue.h"
#include "common/epilogue_thresholds.h"
#include "common/quant.h"

namespace apnn {
namespace {

// Runs body(begin, end) over [0, count) split across threads.
template <typename F>
void parallel_for(int64_t count, int threads, F body) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, count));
  const int64_t chunk = (count + t - 1) / t;
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < t; ++i) {
    const int64_t b = i * chunk, e = std::min(count, b + chunk);
    if (b < e) pool.emplace_back(body, b, e);
  }
  for (auto& th : pool) th.join();
}

// The valid taps of an output position along one axis: [first, last).
void valid_taps(int64_t out, int64_t stride, int64_t pad, int64_t kernel, int64_t size, int64_t* first,
                int64_t* last) {
  const int64_t in0 = out * stride - pad;
  *first = std::max<int64_t>(0, -in0);
  *last = std::min<int64_t>(kernel, size - in0);
}

// The real value (code - zero point) of element (row, col) of packed planes.
int64_t element_value(const uint32_t* planes, int64_t rows_padded, int64_t row_words, const apnn_quant_t& q,
                      int64_t row, int64_t col) {
  int64_t v = real_offset(q);
  for (int i = 0; i < q.bits; ++i)
    if ((planes[(i * rows_padded + row) * row_words + col / 32] >> (col % 32)) & 1u)
      v += plane_coefficient(i, q.bits, q.encoding);
  return v;
}

// Y of a grouped convolution (apnn.h, "Grouped convolution"), element by element: output o reads
// the C/G input channels of its group, the weights' columns 0..C/G-1 of each tap.
void conv_raw_grouped(const ConvCall& call, int32_t* y, int threads) {
  const PackedMatrix& x = *call.x;
  const ConvWeights& w = *call.w;
  const ConvGeometry& g = call.geometry;
  const int64_t cg = g.group_channels(), og = g.out_channels / g.groups;
  parallel_for(g.out_pixels(), threads, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const int64_t n = m / (g.out_h * g.out_w), oh = m / g.out_w % g.out_h, owp = m % g.out_w;
      for (int64_t o = 0; o < g.out_channels; ++o) {
        const int64_t first = (o / og) * cg;
        int64_t acc = 0;
        for (int64_t a = 0; a < g.kh; ++a) {
          const int64_t ih = oh * g.stride_h - g.pad_h + a;
          if (ih < 0 || ih >= g.height) continue;  // padding: the real value 0
          for (int64_t b = 0; b < g.kw; ++b) {
            const int64_t iw = owp * g.stride_w - g.pad_w + b;
            if (iw < 0 || iw >= g.width) continue;
            const int64_t pixel = (n * g.height + ih) * g.width + iw;
            const int64_t tap = (a * g.kw + b) * w.channel_words * 32;
            for (int64_t c = 0; c < cg; ++c)
              acc += element_value(x.planes_mem, x.rows_padded, x.words, x.quant, pixel, first + c) *
                     element_value(w.planes_mem, w.rows_padded, w.words, w.quant, o, tap + c);
          }
        }
        y[m * g.out_channels + o] = static_cast<int32_t>(acc);
      }
    }
  });
}

// Y (out_pixels x O int32) of the convolution.
void conv_raw(const ConvCall& call, int32_t* y, int threads) {
  if (call.geometry.groups > 1) return conv_raw_grouped(call, y, threads);
  const PackedMatrix& x = *call.x;
  const ConvWeights& w = *call.w;
  const ConvGeometry& g = call.geometry;
  const int p = x.quant.bits, q = w.quant.bits;
  const int64_t ox = real_offset(x.quant), ow = real_offset(w.quant);
  const int64_t cwords = x.words;  // == w.channel_words
  parallel_for(g.out_pixels(), threads, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const int64_t n = m / (g.out_h * g.out_w), oh = m / g.out_w % g.out_h, owp = m % g.out_w;
      int64_t kh0, kh1, kw0, kw1;
      valid_taps(oh, g.stride_h, g.pad_h, g.kh, g.height, &kh0, &kh1);
      valid_taps(owp, g.stride_w, g.pad_w, g.kw, g.width, &kw0, &kw1);
      const int64_t count = std::max<int64_t>(0, kh1 - kh0) * std::max<int64_t>(0, kw1 - kw0);
      // Input pixel of each valid tap, and the sum of their row sums (padding pixels add 0).
      std::vector<std::pair<int64_t, int64_t>> taps;  // (tap index, input pixel)
      int64_t sx = 0;
      for (int64_t a = kh0; a < kh1; ++a)
        for (int64_t b = kw0; b < kw1; ++b) {
          const int64_t pix = (n * g.height + oh * g.stride_h - g.pad_h + a) * g.width + owp * g.stride_w - g.pad_w + b;
          taps.emplace_back(a * g.kw + b, pix);
          sx += x.row_sums_mem[pix];
        }
      for (int64_t o = 0; o < g.out_channels; ++o) {
        int64_t acc = 0;
        for (int i = 0; i < p; ++i) {
          for (int j = 0; j < q; ++j) {
            int64_t pop = 0;
            for (const auto& tp : taps) {
              const uint32_t* xr = x.planes_mem + (i * x.rows_padded + tp.second) * cwords;
              const uint32_t* wr = w.planes_mem + (j * w.rows_padded + o) * w.words + tp.first * cwords;
              for (int64_t t = 0; t < cwords; ++t) pop += __builtin_popcount(xr[t] & wr[t]);
            }
            acc += static_cast<int64_t>(plane_coefficient(i, p, x.quant.encoding)) *
                   plane_coefficient(j, q, w.quant.encoding) * pop;
          }
        }
        // Rank-1 corrections over the valid taps only: sum_t sum_c Pw from the summed-area table.
        int64_t sw = 0;
        if (count > 0) {
          const int32_t* sat = w.tap_sat_mem + o * w.sat_stride();
          const int64_t s = g.kw + 1;
          sw = static_cast<int64_t>(sat[kh1 * s + kw1]) - sat[kh0 * s + kw1] - sat[kh1 * s + kw0] + sat[kh0 * s + kw0];
        }
        acc += ow * sx + ox * sw + count * g.channels * ox * ow;
        y[m * g.out_channels + o] = static_cast<int32_t>(acc);
      }
    }
  });
}

// Writes the packed codes of `y` into the call's output tensor, one pixel row at a time.
template <typename CodeOf>
void write_packed(PackedMatrix& out, int64_t pixels, int64_t channels, CodeOf code_of) {
  const OutputQuant oq = output_quant(out.quant);
  std::memset(out.planes_mem, 0, out.total_words() * sizeof(uint32_t));
  std::memset(out.row_sums_mem, 0, out.rows_padded * sizeof(int32_t));
  for (int64_t pm = 0; pm < pixels; ++pm) {
    int64_t sum = 0;
    for (int64_t o = 0; o < channels; ++o) {
      const int32_t code = code_of(pm, o);
      const uint32_t bits = code_bits(code, oq.bits, oq.encoding);
      for (int i = 0; i < oq.bits; ++i)
        if ((bits >> i) & 1u) out.planes_mem[(i * out.rows_padded + pm) * out.words + o / 32] |= 1u << (o % 32);
      sum += plane_part(code, oq.encoding);
    }
    out.row_sums_mem[pm] = static_cast<int32_t>(sum);
  }
}

// The caller's threshold table as the whole epilogue (apnn.h, "Threshold epilogues"): a level
// per result from the table of the residual's code, a fused max pool keeping the top level.
void threshold_epilogue(const ConvCall& call, const std::vector<int32_t>& raw) {
  const ConvGeometry& g = call.geometry;
  const EpilogueParams& e = call.epilogue;
  const int64_t O = g.out_channels;
  const int64_t table_size = (e.threshold_levels + 2) * O;
  const OutputQuant oq = output_quant(call.y_packed->quant);
  const int k = e.pool == APNN_POOL_MAX ? e.pool_size : 1, s = e.pool == APNN_POOL_MAX ? e.pool_stride : 1;
  write_packed(*call.y_packed, g.pooled_pixels(), O, [&](int64_t pm, int64_t o) {
    const int64_t n = pm / (g.pooled_h * g.pooled_w), py = pm / g.pooled_w % g.pooled_h, px = pm % g.pooled_w;
    int32_t level = 0;
    for (int i = 0; i < k * k; ++i) {
      const int64_t m = (n * g.out_h + py * s + i / k) * g.out_w + px * s + i % k;
      const int32_t* table =
          e.thresholds + (call.residual.planes ? residual_table_index(call.residual, m, o) * table_size : 0);
      const int32_t l = threshold_level(table, O, e.threshold_levels, o, raw[m * O + o]);
      level = i == 0 || l > level ? l : level;
    }
    return code_of_level(oq, level);
  });
}

}  // namespace

void host_conv2d(const ConvCall& call, int threads) {
  const ConvGeometry& g = call.geometry;
  const int64_t O = g.out_channels;
  if (!call.has_epilogue) {
    conv_raw(call, static_cast<int32_t*>(call.y_mem), threads);
    return;
  }
  std::vector<int32_t> raw(static_cast<size_t>(g.out_pixels() * O));
  conv_raw(call, raw.data(), threads);
  const EpilogueParams& e = call.epilogue;
  if (e.thresholds_only) {
    threshold_epilogue(call, raw);
    return;
  }
  std::vector<float> pre(raw.size());
  for (int64_t m = 0; m < g.out_pixels(); ++m)
    for (int64_t o = 0; o < O; ++o)
      pre[m * O + o] = epilogue_pre_pool(e, call.residual, raw[m * O + o], m, o);

  // Pooling (a 1 x 1 window when there is none).
  const int k = e.pool_size, s = e.pool_stride;
  std::vector<float> out(static_cast<size_t>(g.pooled_pixels() * O));
  for (int64_t pm = 0; pm < g.pooled_pixels(); ++pm) {
    const int64_t n = pm / (g.pooled_h * g.pooled_w), py = pm / g.pooled_w % g.pooled_h, px = pm % g.pooled_w;
    for (int64_t o = 0; o < O; ++o) {
      float acc = 0.0f;
      for (int i = 0; i < k * k; ++i) {
        const int64_t m = (n * g.out_h + py * s + i / k) * g.out_w + px * s + i % k;
        acc = pool_step(e.pool, acc, pre[m * O + o], i);
      }
      out[pm * O + o] = pool_finish(e.pool, acc, k * k);
    }
  }
  if (!call.y_packed) {
    std::memcpy(call.y_mem, out.data(), out.size() * sizeof(float));
    return;
  }
  const OutputQuant oq = output_quant(call.y_packed->quant);
  write_packed(*call.y_packed, g.pooled_pixels(), O,
               [&](int64_t pm, int64_t o) { return requantize(oq, e.out_scale, out[pm * O + o]); });
}

}  // namespace apnn
