// CUDA kernels of the network helpers: one thread per pixel running the shared per-pixel code
// of nn_types.h. Both launch without synchronizing, so they can be captured in a CUDA graph.
#include "nn/nn_kernels.h"

#include "common/cuda_check.h"

namespace apnn {
namespace {

constexpr int kThreads = 128;

__global__ void pack_input_kernel(InputPackCall call) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < call.out.rows) pack_input_row(call, row);
}

__global__ void max_pool_kernel(PoolCall call) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < call.y.rows) max_pool_row(call, row);
}

unsigned blocks(int64_t rows) { return static_cast<unsigned>((rows + kThreads - 1) / kThreads); }

}  // namespace

void pack_input_cuda(const InputPackCall& call, cudaStream_t stream) {
  pack_input_kernel<<<blocks(call.out.rows), kThreads, 0, stream>>>(call);
  APNN_CUDA_CHECK(cudaGetLastError());
}

void max_pool_cuda(const PoolCall& call, cudaStream_t stream) {
  max_pool_kernel<<<blocks(call.y.rows), kThreads, 0, stream>>>(call);
  APNN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace apnn
