// CUDA kernels of the network helpers: the input packer runs a warp per packed row, each lane
// one column of a 32-column word, and builds the plane words with ballots; the max pool gives
// each lane one word of a row. Both run the per-element rules of nn_types.h (the pool with its
// planes a compile-time count, which keeps its per-plane arrays in registers, and the pixel
// decoded once per row in 32 bits), so host and GPU compute the very same bits, and launch
// without synchronizing (CUDA-graph capturable).
#include "nn/nn_kernels.h"

#include <algorithm>

#include "arch/dependent_launch.cuh"
#include "common/cuda_check.h"
#include "common/warp_planes.cuh"

namespace apnn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__global__ void pack_input_kernel(InputPackCall call) {
  arch::allow_next_kernel_start();  // a convolution reads the result (it waits for this kernel)
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  const PackedView& o = call.out;
  if (row >= o.rows) return;  // whole warps exit together
  const OutputQuant q = input_quant(call);
  const InputRow r = input_row(call, row);
  int32_t sum = 0;
  // Words past the real columns stay as planned: zero bits (Network::allocate_tensor).
  const int64_t real_words = (o.cols + 31) / 32;
  for (int64_t w = 0; w < real_words; ++w) {
    const int64_t col = w * 32 + lane;
    uint32_t bits = 0;
    if (col < o.cols) {
      const int32_t code = input_code(call, q, r, static_cast<int>(col));
      bits = code_bits(code, q.bits, q.encoding);
      sum += plane_part(code, q.encoding);
    }
    const uint32_t mine = warp_plane_word(bits, q.bits, lane);
    if (lane < q.bits) o.planes[(lane * o.rows_padded + row) * o.words + w] = mine;
  }
  sum = warp_sum(sum);
  if (lane == 0) o.row_sums[row] = sum;
}

// The im2col form with each column's tap offsets in a table (built once per block), so an
// element costs a table read, a bounds test and a load instead of two integer divisions.
constexpr int kTableColumns = 4096;
constexpr int kMaxIm2colBlocks = 2048;  // rows are strided over the grid

__global__ void pack_im2col_kernel(InputPackCall call) {
  arch::allow_next_kernel_start();
  __shared__ int s_offset[kTableColumns];  // (dh * in_w + dw) * in_c + ch
  __shared__ short2 s_tap[kTableColumns];  // (dh, dw)
  const PackedView& o = call.out;
  const Im2colGeometry& g = call.im2col;
  const int cols = static_cast<int>(o.cols), in_c = static_cast<int>(g.in_c), in_w = static_cast<int>(g.in_w);
  for (int col = threadIdx.x; col < cols; col += kThreads) {
    const int tap = col / in_c, ch = col - tap * in_c, dh = tap / g.kw, dw = tap - dh * g.kw;
    s_offset[col] = (dh * in_w + dw) * in_c + ch;
    s_tap[col] = make_short2(static_cast<short>(dh), static_cast<short>(dw));
  }
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const OutputQuant q = input_quant(call);
  const int64_t real_words = (o.cols + 31) / 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < o.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const InputRow r = input_row(call, row);
    const int64_t corner = r.base + (static_cast<int64_t>(r.ih0) * in_w + r.iw0) * in_c;  // may be off the image
    int32_t sum = 0;
    for (int64_t w = 0; w < real_words; ++w) {
      const int col = static_cast<int>(w * 32) + lane;
      uint32_t bits = 0;
      if (col < cols) {
        const short2 t = s_tap[col];
        const int ih = r.ih0 + t.x, iw = r.iw0 + t.y;
        int32_t code = 0;  // padding: the real 0 (real_offset 0, see Im2colGeometry)
        if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w) code = input_value_code(call, q, corner + s_offset[col]);
        bits = code_bits(code, q.bits, q.encoding);
        sum += plane_part(code, q.encoding);
      }
      const uint32_t mine = warp_plane_word(bits, q.bits, lane);
      if (lane < q.bits) o.planes[(lane * o.rows_padded + row) * o.words + w] = mine;
    }
    sum = warp_sum(sum);
    if (lane == 0) o.row_sums[row] = sum;
  }
}

// 2^lanes_log2 lanes per output row, one word (32 channels) each, over the words that hold
// channels: the padding words of y stay as planned (zero), so narrow layers (C = 64: 2 words)
// do not leave most of a warp idle.
template <int kBits>
__global__ void max_pool_kernel(PoolCall call, int lanes_log2, int real_words) {
  arch::allow_next_kernel_start();
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t row = thread >> lanes_log2;
  const int lanes = 1 << lanes_log2, sub = static_cast<int>(thread & (lanes - 1));
  int32_t sum = 0;
  if (row < call.y.rows) {
    const int r = static_cast<int>(row), width = static_cast<int>(call.y.width), height = static_cast<int>(call.y.height);
    const int ow = r % width, oh = (r / width) % height, n = r / (width * height);
    for (int w = sub; w < real_words; w += lanes) sum += max_pool_word<kBits>(call, n, oh, ow, row, w);
  }
  for (int off = lanes / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (row < call.y.rows && sub == 0) call.y.row_sums[row] = sum;
}

unsigned blocks(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

}  // namespace

void pack_input_cuda(const InputPackCall& call, cudaStream_t stream) {
  const Im2colGeometry& g = call.im2col;
  if (g.kh > 0 && call.out.cols <= kTableColumns && int64_t{g.kh} * g.in_w * g.in_c < (int64_t{1} << 31)) {
    const unsigned grid = std::min<unsigned>(blocks(call.out.rows), kMaxIm2colBlocks);
    pack_im2col_kernel<<<grid, kThreads, 0, stream>>>(call);
    APNN_CUDA_CHECK(cudaGetLastError());
    return;
  }
  pack_input_kernel<<<blocks(call.out.rows), kThreads, 0, stream>>>(call);
  APNN_CUDA_CHECK(cudaGetLastError());
}

void max_pool_cuda(const PoolCall& call, cudaStream_t stream) {
  const int64_t real_words = (call.x.cols + 31) / 32;
  int lanes_log2 = 0;
  while ((int64_t{1} << lanes_log2) < real_words && lanes_log2 < 5) ++lanes_log2;
  const int64_t threads = call.y.rows << lanes_log2;
  require(call.y.rows < (int64_t{1} << 31) && (threads + kThreads - 1) / kThreads < (int64_t{1} << 31),
          APNN_STATUS_UNSUPPORTED, "max pool: the output has too many pixels for one launch; split the batch");
  const unsigned grid = static_cast<unsigned>((threads + kThreads - 1) / kThreads);
  const int words = static_cast<int>(real_words);
  using PoolKernel = void (*)(PoolCall, int, int);
  constexpr PoolKernel kernels[kMaxBits] = {max_pool_kernel<1>, max_pool_kernel<2>, max_pool_kernel<3>,
                                            max_pool_kernel<4>, max_pool_kernel<5>, max_pool_kernel<6>,
                                            max_pool_kernel<7>, max_pool_kernel<8>};
  const int bits = call.x.quant.bits;
  require(bits >= 1 && bits <= kMaxBits, APNN_STATUS_INTERNAL_ERROR, "max pool: activations of 1..8 bits");
  kernels[bits - 1]<<<grid, kThreads, 0, stream>>>(call, lanes_log2, words);
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
