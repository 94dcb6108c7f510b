// The CUDA backend: device memory, one stream per context, kernel dispatch and timing.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/backend.h"
#include "common/cuda_check.h"
#include "conv/conv_dispatch.h"
#include "gemm/gemm_dispatch.h"
#include "gemm/pack.h"
#include "nn/nn_kernels.h"

namespace apnn {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return count;
}

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    const int count = cuda_device_count();
    require(count > 0, APNN_STATUS_NO_DEVICE, "the CUDA backend needs a GPU, and none is usable here");
    APNN_CUDA_CHECK(cudaSetDevice(0));
    APNN_CUDA_CHECK(cudaGetDeviceProperties(&props_, 0));
    require(props_.major >= 8, APNN_STATUS_NO_DEVICE,
            std::string("libapnn needs compute capability 8.0 or newer, found ") + props_.name + " (sm_" +
                std::to_string(props_.major * 10 + props_.minor) + ")");
    APNN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaBackend() override {
    release_workspace();
    cudaStreamDestroy(stream_);
  }

  void info(apnn_context_info_t* info) const override {
    info->backend = APNN_BACKEND_CUDA;
    std::strncpy(info->device_name, props_.name, sizeof(info->device_name) - 1);
    info->compute_capability = props_.major * 10 + props_.minor;
    info->multiprocessors = props_.multiProcessorCount;
  }

  void* allocate(size_t bytes) override {
    void* mem = nullptr;
    const cudaError_t err = cudaMalloc(&mem, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(APNN_STATUS_OUT_OF_MEMORY, "cudaMalloc of " + std::to_string(bytes) + " bytes failed: " +
                                                 cudaGetErrorString(err));
    }
    return mem;
  }
  void release(void* mem) noexcept override {
    if (mem) {
      cudaStreamSynchronize(stream_);  // work queued on the stream may still use it
      cudaFree(mem);
    }
  }
  void write(void* mem, const void* host, size_t bytes) override {
    APNN_CUDA_CHECK(cudaMemcpyAsync(mem, host, bytes, cudaMemcpyHostToDevice, stream_));
    APNN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void read(void* host, const void* mem, size_t bytes) override {
    APNN_CUDA_CHECK(cudaMemcpyAsync(host, mem, bytes, cudaMemcpyDeviceToHost, stream_));
    APNN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void synchronize() override { APNN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void pack(const void* codes, apnn_dtype_t dtype, PackedMatrix& out) override {
    pack_codes_cuda(codes, dtype, out, stream_);
  }

  void gemm(const PackedMatrix& x, const PackedMatrix& w, int32_t* y) override {
    const GemmPlan plan = plan_gemm(x, w, gemm_target(), override_);
    launch_gemm(plan, x, w, y, split_k_workspace(gemm_workspace_size(plan, x, w)), stream_);
  }
  std::string gemm_kernel_name(const PackedMatrix& x, const PackedMatrix& w) const override {
    return plan_gemm(x, w, gemm_target(), override_).name;
  }
  void set_gemm_override(const GemmOverride& choice) override { override_ = choice; }

  void conv2d(const ConvCall& call) override {
    // The grouped kernel (conv_grouped.cu) is built, but no GPU has run it yet: refused until one has.
    require(call.geometry.groups == 1, APNN_STATUS_UNSUPPORTED,
            "grouped convolution runs on the host backend for now: the CUDA path is built but not yet verified "
            "on a GPU");
    conv_.run(call, gemm_target(), stream_);
  }
  bool conv_tap_packing() const override { return conv_.tiled(gemm_target()); }
  std::string conv2d_kernel_name(const ConvCall& call) const override { return conv_.kernel_name(call, gemm_target()); }
  bool conv2d_takes_unpadded_rows(const ConvCall& call) const override {
    return conv_.takes_unpadded_rows(call, gemm_target());
  }
  void set_conv_override(const ConvOverride& choice) override { conv_.set_override(choice); }
  void set_options(const apnn_options_t& options) override {
    conv_.set_options(options);
    first_layer_taps_ = options.first_layer_taps;
  }
  // Networks (cuda/nn).
  void pack_input(const InputPackCall& call) override { pack_input_cuda(call, stream_); }
  void max_pool(const PoolCall& call) override { max_pool_cuda(call, stream_); }
  std::string first_layer_kernel_name(const FirstLayerCall& call) const override {
    return apnn::first_layer_kernel_name(call, props_.major == 9 && props_.minor == 0, first_layer_taps_);
  }
  void first_layer(const FirstLayerCall& call) override {
    first_layer_cuda(call, props_.multiProcessorCount, props_.major == 9 && props_.minor == 0, first_layer_taps_,
                     stream_);
  }
  std::unique_ptr<Recording> record(const std::function<void()>& op) override;

  GemmTarget gemm_target() const {
    return {props_.multiProcessorCount, props_.major >= 9, props_.major == 9 && props_.minor == 0};
  }

  // Grows the zeroed split-K workspace on demand. Growing synchronizes, so a benchmark's
  // warm-up call (outside graph capture) is what allocates it.
  GemmWorkspace split_k_workspace(const GemmWorkspaceSize& need) {
    if (need.entries > ws_entries_ || need.counters > ws_counters_) {
      cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
      APNN_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
      require(capturing == cudaStreamCaptureStatusNone, APNN_STATUS_INTERNAL_ERROR,
              "split-K workspace must grow outside CUDA graph capture");
      APNN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      release_workspace();
      ws_entries_ = std::max(need.entries, ws_entries_);
      ws_counters_ = std::max(need.counters, ws_counters_);
      workspace_.workspace = static_cast<int32_t*>(allocate(ws_entries_ * sizeof(int32_t)));
      workspace_.tile_counters = static_cast<unsigned*>(allocate(ws_counters_ * sizeof(unsigned)));
      APNN_CUDA_CHECK(cudaMemset(workspace_.workspace, 0, ws_entries_ * sizeof(int32_t)));
      APNN_CUDA_CHECK(cudaMemset(workspace_.tile_counters, 0, ws_counters_ * sizeof(unsigned)));
    }
    return workspace_;
  }
  void release_workspace() noexcept {
    release(workspace_.workspace);
    release(workspace_.tile_counters);
    workspace_ = {};
  }

  // Captures `per_graph` calls in a CUDA graph and times its replays with CUDA events, the
  // way the cuBLAS/cuDNN baselines are timed, so launch overhead is counted alike.
  double benchmark(const std::function<void()>& op, int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) op();
    APNN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const int per_graph = std::min(iters, 20);
    const int replays = std::max(5, (iters + per_graph - 1) / per_graph);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    APNN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      for (int i = 0; i < per_graph; ++i) op();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    APNN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    struct Cleanup {
      cudaGraph_t g;
      cudaGraphExec_t* e;
      cudaEvent_t start = nullptr, stop = nullptr;
      ~Cleanup() {
        if (*e) cudaGraphExecDestroy(*e);
        cudaGraphDestroy(g);
        if (start) cudaEventDestroy(start);
        if (stop) cudaEventDestroy(stop);
      }
    } cleanup{graph, &exec};
    APNN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    APNN_CUDA_CHECK(cudaEventCreate(&cleanup.start));
    APNN_CUDA_CHECK(cudaEventCreate(&cleanup.stop));
    APNN_CUDA_CHECK(cudaGraphLaunch(exec, stream_));  // warm the graph itself
    std::vector<double> times;
    for (int r = 0; r < replays; ++r) {
      APNN_CUDA_CHECK(cudaEventRecord(cleanup.start, stream_));
      APNN_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
      APNN_CUDA_CHECK(cudaEventRecord(cleanup.stop, stream_));
      APNN_CUDA_CHECK(cudaEventSynchronize(cleanup.stop));
      float ms = 0.0f;
      APNN_CUDA_CHECK(cudaEventElapsedTime(&ms, cleanup.start, cleanup.stop));
      times.push_back(ms * 1000.0 / per_graph);
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
  }

 private:
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  GemmOverride override_;
  ConvRunner conv_;  // convolution choices and workspace (cuda/conv)
  int first_layer_taps_ = APNN_OPTION_AUTO;  // apnn_options_t::first_layer_taps
  GemmWorkspace workspace_;
  size_t ws_entries_ = 0, ws_counters_ = 0;
};

// A captured CUDA graph of a fixed launch sequence, replayed on the backend's stream.
class CudaRecording final : public Backend::Recording {
 public:
  CudaRecording(cudaStream_t stream, const std::function<void()>& op) : stream_(stream) {
    APNN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    APNN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      op();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream_, &broken);
      if (broken) cudaGraphDestroy(broken);
      throw;
    }
    APNN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
    const cudaError_t err = cudaGraphInstantiate(&exec_, graph_, 0);
    if (err != cudaSuccess) {
      cudaGraphDestroy(graph_);
      APNN_CUDA_CHECK(err);
    }
  }
  ~CudaRecording() override {
    cudaStreamSynchronize(stream_);
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
  }
  void replay() override { APNN_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaStream_t stream_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

std::unique_ptr<Backend::Recording> CudaBackend::record(const std::function<void()>& op) {
  return std::make_unique<CudaRecording>(stream_, op);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace apnn
