// Peak of Hopper's warpgroup binary MMA (wgmma ... b1.b1.and.popc, SASS BGMMA), the number the
// wgmma GEMM is measured against (an mma.sync probe measures that instruction's). Operands are
// whatever shared memory holds: only the rate matters. Build and run on an sm_90 GPU:
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Icuda tools/probe/wgmma_b1_peak.cu
#include <cuda_runtime.h>

#include <cstdio>

#include "gemm/bitplane_gemm_wgmma_kernel.cuh"

using namespace apnn::wgmma_detail;

template <int N>
__global__ void __launch_bounds__(128) wgmma_peak(int iters, int* sink) {
  __shared__ __align__(1024) uint32_t tiles[(64 + 256) * 32];  // A: 64 rows, B: up to 256 rows
  for (int i = threadIdx.x; i < (64 + 256) * 32; i += 128) tiles[i] = i * 2654435761u;
  fence_proxy_async();
  __syncthreads();
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(tiles));
  const uint64_t a = sw128_descriptor(base), b = sw128_descriptor(base + 64 * 128);
  int32_t d[N / 2] = {};
  for (int it = 0; it < iters; ++it) {
    wgmma_fence();
#pragma unroll
    for (int u = 0; u < 4; ++u) wgmma_b1_and<N>(d, a, b);
    wgmma_commit();
    wgmma_wait<0>();
  }
  int32_t x = 0;
  for (int i = 0; i < N / 2; ++i) x ^= d[i];
  if (x == 0x1234567) *sink = x;  // keeps the products live
}

template <int N>
void measure(int multiprocessors, int* sink) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int per_sm = 1; per_sm <= 3; ++per_sm) {
    const int iters = 2000, blocks = multiprocessors * per_sm;
    wgmma_peak<N><<<blocks, 128>>>(10, sink);  // warm-up
    cudaEventRecord(start);
    wgmma_peak<N><<<blocks, 128>>>(iters, sink);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    const double ops = 2.0 * 64 * N * 256 * 4.0 * iters * blocks;
    printf("wgmma m64n%dk256 b1 and.popc, %d warpgroups per SM: %8.0f TOPS (%s)\n", N, per_sm, ops / ms / 1e9,
           cudaGetErrorString(cudaGetLastError()));
  }
}

int main() {
  int multiprocessors = 0, *sink = nullptr;
  cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, 0);
  cudaMalloc(&sink, sizeof(int));
  measure<64>(multiprocessors, sink);
  measure<128>(multiprocessors, sink);
  measure<192>(multiprocessors, sink);
  return 0;
}
