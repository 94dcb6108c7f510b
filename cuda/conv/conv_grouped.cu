// The direct grouped convolution (conv_grouped.h).
#include "conv/conv_grouped.h"

#include "common/backend.h"
#include "common/cuda_check.h"
#include "common/quant.h"
#include "common/status.h"

namespace apnn {
namespace {

// One operand's packed planes and how to read a real value (code - zero point) out of them.
struct PlaneReader {
  const uint32_t* planes = nullptr;
  int64_t plane_words = 0;  // rows_padded * words
  int64_t row_words = 0;    // words of one row of one plane
  int bits = 0;
  int32_t coefficient[8] = {};
  int32_t offset = 0;       // real_offset: value_offset - zero_point

  // The real value of the element at bit `bit` of word `word` of row `row`.
  __device__ int32_t value(int64_t row, int64_t word, int bit) const {
    const uint32_t* at = planes + row * row_words + word;
    int32_t v = offset;
    for (int i = 0; i < bits; ++i) v += ((__ldg(at + i * plane_words) >> bit) & 1u) ? coefficient[i] : 0;
    return v;
  }
};

PlaneReader reader(const uint32_t* planes, int64_t rows_padded, int64_t words, const apnn_quant_t& q) {
  PlaneReader r;
  r.planes = planes;
  r.plane_words = rows_padded * words;
  r.row_words = words;
  r.bits = q.bits;
  for (int i = 0; i < q.bits; ++i) r.coefficient[i] = plane_coefficient(i, q.bits, q.encoding);
  r.offset = static_cast<int32_t>(real_offset(q));
  return r;
}

struct GroupedConvParams {
  PlaneReader x, w;
  int64_t outputs = 0;  // N*OH*OW*O
  int H = 0, W = 0, O = 0, KH = 0, KW = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, OH = 0, OW = 0;
  int group_channels = 0, group_outputs = 0;  // C/G, O/G
  int tap_words = 0;                           // words of one weight tap (Cpad / 32)
  int32_t* y = nullptr;
};

// Consecutive threads take consecutive channels of one output pixel: the same input window.
__global__ void grouped_conv_kernel(const GroupedConvParams prm) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= prm.outputs) return;
  const int o = static_cast<int>(index % prm.O);
  const int64_t m = index / prm.O;
  const int ow = static_cast<int>(m % prm.OW), oh = static_cast<int>(m / prm.OW % prm.OH);
  const int64_t n = m / (static_cast<int64_t>(prm.OW) * prm.OH);
  const int first_channel = (o / prm.group_outputs) * prm.group_channels;
  int32_t acc = 0;
  for (int a = 0; a < prm.KH; ++a) {
    const int ih = oh * prm.stride_h - prm.pad_h + a;
    if (ih < 0 || ih >= prm.H) continue;  // padding: the real value 0
    for (int b = 0; b < prm.KW; ++b) {
      const int iw = ow * prm.stride_w - prm.pad_w + b;
      if (iw < 0 || iw >= prm.W) continue;
      const int64_t pixel = (n * prm.H + ih) * prm.W + iw;
      const int64_t tap = static_cast<int64_t>(a * prm.KW + b) * prm.tap_words;
      for (int c = 0; c < prm.group_channels; ++c) {
        const int ci = first_channel + c;
        acc += prm.x.value(pixel, ci / 32, ci % 32) * prm.w.value(o, tap + c / 32, c % 32);
      }
    }
  }
  prm.y[index] = acc;
}

}  // namespace

void launch_grouped_conv(const ConvCall& call, int32_t* y, cudaStream_t stream) {
  const ConvGeometry& g = call.geometry;
  const PackedMatrix& x = *call.x;
  const ConvWeights& w = *call.w;
  require(w.tap_words == 0, APNN_STATUS_INTERNAL_ERROR, "grouped convolution weights with packed taps");
  GroupedConvParams prm;
  prm.x = reader(x.planes_mem, x.rows_padded, x.words, x.quant);
  prm.w = reader(w.planes_mem, w.rows_padded, w.words, w.quant);
  prm.outputs = g.out_pixels() * g.out_channels;
  prm.H = static_cast<int>(g.height);
  prm.W = static_cast<int>(g.width);
  prm.O = static_cast<int>(g.out_channels);
  prm.KH = static_cast<int>(g.kh);
  prm.KW = static_cast<int>(g.kw);
  prm.stride_h = static_cast<int>(g.stride_h);
  prm.stride_w = static_cast<int>(g.stride_w);
  prm.pad_h = static_cast<int>(g.pad_h);
  prm.pad_w = static_cast<int>(g.pad_w);
  prm.OH = static_cast<int>(g.out_h);
  prm.OW = static_cast<int>(g.out_w);
  prm.group_channels = static_cast<int>(g.group_channels());
  prm.group_outputs = static_cast<int>(g.out_channels / g.groups);
  prm.tap_words = static_cast<int>(w.channel_words);
  prm.y = y;
  const int threads = 256;
  const int64_t blocks = (prm.outputs + threads - 1) / threads;
  require(blocks <= 0x7fffffff, APNN_STATUS_UNSUPPORTED, "the grouped convolution has too many outputs for one launch");
  grouped_conv_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(prm);
  cuda_check_launch("grouped_conv_kernel");
}

}  // namespace apnn
