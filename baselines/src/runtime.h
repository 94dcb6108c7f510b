// Device memory, streams and timing shared by the GEMM, convolution and network baselines.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>

#include "internal.h"

namespace apnnb {

int cuda_device_count();
// Selects device 0 and checks it is sm_80 or newer; throws NO_DEVICE otherwise.
void ensure_device();

// Compute capability of device 0 as major * 10 + minor (80, 86, 89, 90, ...): calls
// ensure_device(), then reads cudaGetDeviceProperties once per process.
int device_sm();
// Whether the CUTLASS b1 XOR-popc kernels may run on device 0. CUTLASS 4.2 enables
// CUTLASS_ARCH_MMA_B1_XOR_SM80_ENABLED only for __CUDA_ARCH__ <= 890, so on sm_90 and newer its
// XOR mma is `assert(0)`: a device-side assert that kills the CUDA context. False there.
bool xor_popc_supported();
// Throws APNNB_STATUS_UNSUPPORTED unless xor_popc_supported(); `what` names the caller.
void require_xor_popc(const std::string& what);

// Owning device allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { resize(bytes); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  void resize(size_t bytes);  // discards the contents; zero-fills
  void reset() noexcept;
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking stream, destroyed with the object.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

// Runs `op` `warmup` times, then captures min(iters, 20) calls in a CUDA graph and times
// max(5, ceil(iters / per_graph)) replays with CUDA events; returns the median microseconds
// of one call. `op` must only enqueue work on `stream`.
double benchmark(const std::function<void()>& op, cudaStream_t stream, int warmup, int iters);

}  // namespace apnnb
