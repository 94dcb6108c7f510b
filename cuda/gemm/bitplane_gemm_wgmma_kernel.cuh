// The bit-plane GEMM on Hopper's warpgroup binary MMA (wgmma.mma_async ... b1.b1.and.popc,
// SASS BGMMA), sm_90a only: the H100 runs it at ~15,300 TOPS against ~10,400 for
// mma.sync.m16n8k256 (tools/probe/wgmma_b1_peak.cu), and it reads both operands straight from
// shared memory, so no ldmatrix and no fragment registers.
//
// A block is two warpgroups; warpgroup g computes output rows 64g..64g+63 of a 128 x BN tile,
// one int32 accumulator set per plane pair (P*Q*BN/2 registers per thread), and the plane
// pairs are combined once, in the epilogue:
//     Y[m][n] = sum_ij cx_i cw_j acc_ij + ow*Sx[m] + ox*Sw[n] + K*ox*ow   (mod 2^32, exact).
// Operand tiles: 1024-bit slices of every bit-row of X (P planes x 128 rows) and W (Q planes x
// BN rows), one 128-byte shared-memory row each, 16-byte chunks placed with the 128-byte
// swizzle (chunk c of row r at c ^ (r % 8): swizzled<8>, the layout the wgmma descriptors name),
// copied by cp.async through a STAGES-deep ring. The wgmmas of a stage run asynchronously while
// the next stage's copies are issued; a slot is refilled two stages after its wgmmas were
// issued, once wgmma.wait_group has seen them finish.
#pragma once

#include <cstdint>

#include "gemm/bitplane_gemm_kernel.cuh"
#include "gemm/gemm_params.h"

namespace apnn {
namespace wgmma_detail {

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format") of a K-major operand
// whose rows are kRowBytes (32, 64 or 128) with the swizzle of that span, which is what
// gemm_detail::swizzled<kRowBytes / 16> lays out: 8-row groups 8 * kRowBytes apart, the leading
// offset unused (1), the tile aligned to 8 rows so the base offset is 0.
template <int kRowBytes>
__device__ __forceinline__ uint64_t swizzled_descriptor(uint32_t smem_byte_address) {
  static_assert(kRowBytes == 32 || kRowBytes == 64 || kRowBytes == 128, "rows of 32, 64 or 128 bytes");
  constexpr uint64_t kLayout = kRowBytes == 128 ? 1 : kRowBytes == 64 ? 2 : 3;  // 128-, 64-, 32-byte swizzle
  return static_cast<uint64_t>((smem_byte_address & 0x3FFFF) >> 4) | (uint64_t{1} << 16) |
         (uint64_t{8 * kRowBytes >> 4} << 32) | (kLayout << 62);
}
__device__ __forceinline__ uint64_t sw128_descriptor(uint32_t smem_byte_address) {
  return swizzled_descriptor<128>(smem_byte_address);
}
// A no-swizzle K-major operand (PTX ISA, "Matrix Descriptor Format"): core matrices of 8 rows of
// 16 bytes, k_stride bytes apart along K (leading byte offset) and mn_stride along M or N.
__device__ __forceinline__ uint64_t plain_descriptor(uint32_t smem_byte_address, uint32_t k_stride,
                                                     uint32_t mn_stride) {
  return static_cast<uint64_t>((smem_byte_address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(k_stride >> 4) << 16) |
         (static_cast<uint64_t>(mn_stride >> 4) << 32);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async writes are generic-proxy writes; wgmma reads shared memory through the async proxy.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// D (64 x N int32 per warpgroup, N/2 registers per thread) += popc(A & B) over 256 bits.
template <int N>
__device__ __forceinline__ void wgmma_b1_and(int32_t (&d)[N / 2], uint64_t a, uint64_t b);

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
template <>
__device__ __forceinline__ void wgmma_b1_and<64>(int32_t (&d)[32], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k256.s32.b1.b1.and.popc {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31 "
      "}, %32, %33, 1;\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
      : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_b1_and<128>(int32_t (&d)[64], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 "
      "}, %64, %65, 1;\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_b1_and<192>(int32_t (&d)[96], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n192k256.s32.b1.b1.and.popc {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95 "
      "}, %96, %97, 1;\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]),
        "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]),
        "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]),
        "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]),
        "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95])
      : "l"(a), "l"(b));
}
#endif

}  // namespace wgmma_detail

template <int BN, int STAGES, int P, int Q>
struct WgmmaGemm {
  static constexpr int kBM = 128;       // output rows per block: two warpgroups of 64
  static constexpr int kKT = 1024;      // bits per stage: one 128-byte row, the swizzle's span
  static constexpr int kThreads = 256;
  static constexpr int kRowsX = P * kBM, kRowsW = Q * BN;  // bit-rows of each operand tile
  static constexpr int kStageBytes = (kRowsX + kRowsW) * kKT / 8;
  static constexpr int kSmemBytes = STAGES * kStageBytes + 1024;  // + slack to align to 1024 bytes
  static constexpr int kRowStep = kThreads / 8;                  // bit-rows per copy step
  static constexpr int kLoadsX = kRowsX / kRowStep, kLoadsW = kRowsW / kRowStep;
  static_assert(STAGES >= 3, "a slot is refilled two stages after its wgmmas were issued");
  static_assert(BN == 64 || BN == 128 || BN == 192, "wgmma shapes instantiated here");
  static_assert(kRowsW % kRowStep == 0 && kBM % kRowStep == 0, "copies must divide evenly");
  static_assert(P * Q * BN / 2 <= 192, "accumulators must leave registers for the rest");
};

template <int BN, int STAGES, int P, int Q>
__global__ void __launch_bounds__(256, 1) bitplane_gemm_wgmma_kernel(const GemmParams params) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = WgmmaGemm<BN, STAGES, P, Q>;
  using namespace gemm_detail;
  using namespace wgmma_detail;
  constexpr int kBM = Cfg::kBM;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The 128-byte swizzle is applied to absolute shared-memory addresses: tiles start at 1024.
  const uint32_t smem_base = (smem_addr(smem_raw) + 1023u) & ~1023u;

  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * BN;
  const int tid = threadIdx.x;
  const int chunks_per_row = params.words / 4;
  const int k_tiles = (chunks_per_row + 7) / 8;

  // Copy slots: thread t copies chunk t % 8 of bit-rows t / 8 + l * kRowStep.
  const int r0 = tid / 8, chunk = tid % 8;
  const uint4* x_base = reinterpret_cast<const uint4*>(params.x_planes) +
                        static_cast<int64_t>(m0 + r0) * (params.words / 4) + chunk;
  const uint4* w_base = reinterpret_cast<const uint4*>(params.w_planes) +
                        static_cast<int64_t>(n0 + r0) * (params.words / 4) + chunk;
  const uint32_t dst0 = swizzled<8>(r0, chunk);
  const int64_t x_plane_stride = static_cast<int64_t>(params.x_rows_padded) * (params.words / 4);
  const int64_t w_plane_stride = static_cast<int64_t>(params.w_rows_padded) * (params.words / 4);
  auto load_stage = [&](int slot, int kt) {
    const uint32_t stage = smem_base + slot * Cfg::kStageBytes + dst0;
    const int chunk0 = kt * 8;
    const bool k_ok = chunk0 + chunk < chunks_per_row;
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsX; ++l) {
      const int plane = l * Cfg::kRowStep / kBM, row = l * Cfg::kRowStep % kBM;
      const bool ok = k_ok && m0 + r0 + row < params.x_rows_padded;
      cp_async_16(stage + l * Cfg::kRowStep * 128,
                  x_base + plane * x_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
#pragma unroll
    for (int l = 0; l < Cfg::kLoadsW; ++l) {
      const int plane = l * Cfg::kRowStep / BN, row = l * Cfg::kRowStep % BN;
      const bool ok = k_ok && n0 + r0 + row < params.w_rows_padded;
      cp_async_16(stage + Cfg::kRowsX * 128 + l * Cfg::kRowStep * 128,
                  w_base + plane * w_plane_stride + static_cast<int64_t>(row) * (params.words / 4) + chunk0, ok);
    }
  };

  int32_t acc[P * Q][BN / 2];
#pragma unroll
  for (int pq = 0; pq < P * Q; ++pq)
#pragma unroll
    for (int e = 0; e < BN / 2; ++e) acc[pq][e] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 2; ++s) {
    if (s < k_tiles) load_stage(s, s);
    cp_async_commit();
  }
  const int group = tid / 128;  // warpgroup: output rows 64 * group ..
  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<STAGES - 3>();  // this thread's copies of stage t have landed
    fence_proxy_async();
    __syncthreads();  // all of stage t; and every warpgroup has finished the wgmmas of stage t - 2
    const int next = t + STAGES - 2;
    if (next < k_tiles) load_stage(next % STAGES, next);
    cp_async_commit();

    const uint32_t stage = smem_base + (t % STAGES) * Cfg::kStageBytes;
    const uint32_t x_tile = stage + group * 64 * 128, w_tile = stage + Cfg::kRowsX * 128;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < Cfg::kKT / 256; ++ks)
#pragma unroll
      for (int pi = 0; pi < P; ++pi)
#pragma unroll
        for (int qj = 0; qj < Q; ++qj)
          wgmma_b1_and<BN>(acc[pi * Q + qj], sw128_descriptor(x_tile + pi * kBM * 128 + ks * 32),
                           sw128_descriptor(w_tile + qj * BN * 128 + ks * 32));
    wgmma_commit();
    wgmma_wait<1>();  // the previous stage's wgmmas are done: its slot may be refilled
  }
  wgmma_wait<0>();
  cp_async_wait<0>();

  // Accumulator layout (PTX ISA, wgmma D fragments): warp w of the warpgroup holds rows
  // 16w + lane/4 (+8), register 4j + 2h + e is column 8j + 2(lane%4) + e of row half h.
  const int lane = tid & 31, warp_in_group = (tid / 32) % 4;
  auto combined = [&](int r) {  // sum_ij cx_i cw_j acc_ij of accumulator register r
    uint32_t v = 0;
#pragma unroll
    for (int pq = 0; pq < P * Q; ++pq)
      v += static_cast<uint32_t>(params.cx[pq / Q]) * static_cast<uint32_t>(params.cw[pq % Q]) *
           static_cast<uint32_t>(acc[pq][r]);
    return v;
  };
  const bool interior = n0 + BN <= params.N && params.N % 2 == 0;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = m0 + group * 64 + warp_in_group * 16 + lane / 4 + h * 8;
    if (m >= params.M) continue;
    const uint32_t row_term = static_cast<uint32_t>(params.ow) * static_cast<uint32_t>(__ldg(params.x_row_sums + m)) +
                              static_cast<uint32_t>(params.k_ox_ow);
    int32_t* out = params.y + static_cast<int64_t>(m) * params.N;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int n = n0 + j * 8 + (lane % 4) * 2;
      const uint32_t v0 = combined(4 * j + 2 * h) + row_term, v1 = combined(4 * j + 2 * h + 1) + row_term;
      const uint32_t ox = static_cast<uint32_t>(params.ox);
      if (interior) {  // two columns per store
        *reinterpret_cast<int2*>(out + n) =
            make_int2(static_cast<int32_t>(v0 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n))),
                      static_cast<int32_t>(v1 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n + 1))));
      } else {
        if (n < params.N) out[n] = static_cast<int32_t>(v0 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n)));
        if (n + 1 < params.N)
          out[n + 1] = static_cast<int32_t>(v1 + ox * static_cast<uint32_t>(__ldg(params.w_row_sums + n + 1)));
      }
    }
  }
#endif
}

}  // namespace apnn
