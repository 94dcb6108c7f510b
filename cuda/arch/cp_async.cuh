// Asynchronous global -> shared copies (cp.async, sm_80+) and the shared-memory address they take.
// A copy with valid = false reads nothing and writes zeros: out-of-range rows of a tile are zero
// without a branch around the copy.
#pragma once

#include <cstdint>

namespace apnn {
namespace arch {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_8(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 8 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
// The copy of kBytes (8 or 16) chosen at compile time.
template <int kBytes>
__device__ __forceinline__ void cp_async_bytes(uint32_t dst, const void* src, bool valid) {
  static_assert(kBytes == 8 || kBytes == 16, "cp.async copies of 8 or 16 bytes");
  if constexpr (kBytes == 16) {
    cp_async_16(dst, src, valid);
  } else {
    cp_async_8(dst, src, valid);
  }
}
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
// 4 bytes, or 4 zero bytes where !valid (nothing read).
__device__ __forceinline__ void cp_async_4_or_zero(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace arch
}  // namespace apnn
