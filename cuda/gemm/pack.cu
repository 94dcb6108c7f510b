// Bit-plane packing: one warp packs 32 consecutive codes of a row; each lane reads one code
// (coalesced) and __ballot_sync gathers bit i of all 32 lanes into plane i's word.
#include "gemm/pack.h"

#include <climits>
#include <string>

#include "common/cuda_check.h"
#include "common/quant.h"

namespace apnn {
namespace {

template <typename Code>
__global__ void pack_codes_kernel(const Code* __restrict__ codes, int64_t rows, int64_t cols, int64_t rows_padded,
                                  int64_t words, int bits, apnn_encoding_t enc, uint32_t* __restrict__ planes,
                                  int32_t* __restrict__ row_sums, unsigned long long* __restrict__ first_bad) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (warp >= rows_padded * words) return;  // whole warps exit together
  const int64_t r = warp / words, w = warp % words;
  const int64_t k = w * 32 + lane;
  const bool real = r < rows && k < cols;
  int32_t code = 0;
  uint32_t bitsv = 0;
  if (real) {
    const int64_t index = r * cols + k;
    code = static_cast<int32_t>(codes[index]);
    if (code_valid(code, bits, enc)) {
      bitsv = code_bits(code, bits, enc);
    } else {
      atomicMin(first_bad, static_cast<unsigned long long>(index));
      code = value_offset(enc);  // contributes 0 to the row sum; the call fails anyway
    }
  }
  for (int i = 0; i < bits; ++i) {
    const uint32_t word = __ballot_sync(0xffffffffu, (bitsv >> i) & 1u);
    if (lane == i) planes[(i * rows_padded + r) * words + w] = word;
  }
  int32_t part = real ? plane_part(code, enc) : 0;
  for (int off = 16; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
  if (lane == 0 && part != 0) atomicAdd(&row_sums[r], part);
}

}  // namespace

void pack_codes_cuda(const void* codes, apnn_dtype_t dtype, PackedMatrix& out, cudaStream_t stream) {
  unsigned long long* first_bad = nullptr;
  APNN_CUDA_CHECK(cudaMallocAsync(&first_bad, sizeof(*first_bad), stream));
  struct Free {
    unsigned long long* p;
    cudaStream_t s;
    ~Free() { cudaFreeAsync(p, s); }
  } free_guard{first_bad, stream};
  APNN_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(*first_bad), stream));
  APNN_CUDA_CHECK(cudaMemsetAsync(out.row_sums_mem, 0, out.rows_padded * sizeof(int32_t), stream));

  const int threads = 256;
  const int64_t warps = out.rows_padded * out.words;
  const int64_t blocks = (warps * 32 + threads - 1) / threads;
  const auto& q = out.quant;
  switch (dtype) {
    case APNN_DTYPE_INT8:
      pack_codes_kernel<<<blocks, threads, 0, stream>>>(static_cast<const int8_t*>(codes), out.rows, out.cols,
                                                        out.rows_padded, out.words, q.bits, q.encoding,
                                                        out.planes_mem, out.row_sums_mem, first_bad);
      break;
    case APNN_DTYPE_UINT8:
      pack_codes_kernel<<<blocks, threads, 0, stream>>>(static_cast<const uint8_t*>(codes), out.rows, out.cols,
                                                        out.rows_padded, out.words, q.bits, q.encoding,
                                                        out.planes_mem, out.row_sums_mem, first_bad);
      break;
    case APNN_DTYPE_INT32:
      pack_codes_kernel<<<blocks, threads, 0, stream>>>(static_cast<const int32_t*>(codes), out.rows, out.cols,
                                                        out.rows_padded, out.words, q.bits, q.encoding,
                                                        out.planes_mem, out.row_sums_mem, first_bad);
      break;
    default:
      throw Error(APNN_STATUS_INVALID_ARGUMENT, "codes must be int8, uint8 or int32");
  }
  cuda_check_launch("pack_codes_kernel");

  unsigned long long bad = 0;
  APNN_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  APNN_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad != ULLONG_MAX) {
    const size_t size = dtype == APNN_DTYPE_INT32 ? 4 : 1;
    int32_t code = 0;
    if (size == 4) {
      APNN_CUDA_CHECK(cudaMemcpy(&code, static_cast<const char*>(codes) + bad * 4, 4, cudaMemcpyDeviceToHost));
    } else {
      char byte = 0;
      APNN_CUDA_CHECK(cudaMemcpy(&byte, static_cast<const char*>(codes) + bad, 1, cudaMemcpyDeviceToHost));
      code = dtype == APNN_DTYPE_INT8 ? static_cast<int8_t>(byte) : static_cast<uint8_t>(byte);
    }
    const int64_t r = static_cast<int64_t>(bad) / out.cols, k = static_cast<int64_t>(bad) % out.cols;
    throw Error(APNN_STATUS_INVALID_ARGUMENT,
                "code " + std::to_string(code) + " at (" + std::to_string(r) + ", " + std::to_string(k) +
                    ") is outside " + std::to_string(code_min(q.bits, q.encoding)) + ".." +
                    std::to_string(code_max(q.bits, q.encoding)) + " for " + std::to_string(q.bits) + "-bit " +
                    encoding_name(q.encoding) + " codes");
  }
}

}  // namespace apnn
