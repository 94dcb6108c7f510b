#include "runtime.h"

#include <algorithm>
#include <string>
#include <vector>

namespace apnnb {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the "no driver / no device" error
    return 0;
  }
  return count;
}

void ensure_device() {
  require(cuda_device_count() > 0, APNNB_STATUS_NO_DEVICE,
          "the CUTLASS baselines need a CUDA GPU, and none is usable here");
  APNNB_CUDA_CHECK(cudaSetDevice(0));
  int major = 0, minor = 0;
  APNNB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  APNNB_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  require(major >= 8, APNNB_STATUS_NO_DEVICE,
          "the CUTLASS Sm80 baselines need compute capability 8.0 or newer, found sm_" +
              std::to_string(major * 10 + minor));
}

int device_sm() {
  ensure_device();
  // Initialized once (thread-safe); a throw leaves it uninitialized, so a later call retries.
  static const int sm = [] {
    cudaDeviceProp props;
    APNNB_CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
    return props.major * 10 + props.minor;
  }();
  return sm;
}

bool xor_popc_supported() { return device_sm() < 90; }

void require_xor_popc(const std::string& what) {
  const int sm = device_sm();
  require(sm < 90, APNNB_STATUS_UNSUPPORTED,
          what + ": CUTLASS b1 XOR-popc kernels are disabled on sm_" + std::to_string(sm) +
              " (no native BMMA.XOR on Hopper and newer; CUTLASS 4.2 compiles its XOR mma to assert(0) "
              "there); use the AND-popc baseline (int1-and)");
}

void DeviceBuffer::resize(size_t bytes) {
  reset();
  if (bytes == 0) return;
  APNNB_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
  APNNB_CUDA_CHECK(cudaMemset(ptr_, 0, bytes));
}

void DeviceBuffer::reset() noexcept {
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  require(bytes <= bytes_, APNNB_STATUS_INTERNAL_ERROR, "upload larger than the device buffer");
  if (bytes) APNNB_CUDA_CHECK(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  require(bytes <= bytes_, APNNB_STATUS_INTERNAL_ERROR, "download larger than the device buffer");
  if (bytes) APNNB_CUDA_CHECK(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost));
}

Stream::Stream() { APNNB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}
void Stream::synchronize() const { APNNB_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

double benchmark(const std::function<void()>& op, cudaStream_t stream, int warmup, int iters) {
  require_arg(warmup >= 0 && iters >= 1, "benchmark needs warmup >= 0 and iters >= 1");
  for (int i = 0; i < warmup; ++i) op();
  APNNB_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int per_graph = std::min(iters, 20);
  const int replays = std::max(5, (iters + per_graph - 1) / per_graph);
  cudaGraph_t graph = nullptr;
  bool captured = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (captured) {
    try {
      for (int i = 0; i < per_graph; ++i) op();
    } catch (...) {
      captured = false;
    }
    if (cudaStreamEndCapture(stream, &graph) != cudaSuccess) captured = false;
  }
  if (!captured) {
    // Something in `op` cannot be captured: time plain stream launches the same way instead.
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    APNNB_CUDA_CHECK(cudaStreamSynchronize(stream));
    cudaEvent_t start = nullptr, stop = nullptr;
    APNNB_CUDA_CHECK(cudaEventCreate(&start));
    APNNB_CUDA_CHECK(cudaEventCreate(&stop));
    std::vector<double> times;
    try {
      for (int r = 0; r < replays; ++r) {
        APNNB_CUDA_CHECK(cudaEventRecord(start, stream));
        for (int i = 0; i < per_graph; ++i) op();
        APNNB_CUDA_CHECK(cudaEventRecord(stop, stream));
        APNNB_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        APNNB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        times.push_back(ms * 1000.0 / per_graph);
      }
    } catch (...) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      throw;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
  }
  struct Cleanup {
    cudaGraph_t graph;
    cudaGraphExec_t exec = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Cleanup() {
      if (exec) cudaGraphExecDestroy(exec);
      if (graph) cudaGraphDestroy(graph);
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } c{graph};
  APNNB_CUDA_CHECK(cudaGraphInstantiate(&c.exec, graph, 0));
  APNNB_CUDA_CHECK(cudaEventCreate(&c.start));
  APNNB_CUDA_CHECK(cudaEventCreate(&c.stop));
  APNNB_CUDA_CHECK(cudaGraphLaunch(c.exec, stream));  // warm the graph itself
  std::vector<double> times;
  for (int r = 0; r < replays; ++r) {
    APNNB_CUDA_CHECK(cudaEventRecord(c.start, stream));
    APNNB_CUDA_CHECK(cudaGraphLaunch(c.exec, stream));
    APNNB_CUDA_CHECK(cudaEventRecord(c.stop, stream));
    APNNB_CUDA_CHECK(cudaEventSynchronize(c.stop));
    float ms = 0.0f;
    APNNB_CUDA_CHECK(cudaEventElapsedTime(&ms, c.start, c.stop));
    times.push_back(ms * 1000.0 / per_graph);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace apnnb
