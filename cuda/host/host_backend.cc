// The host (CPU) backend: plain, exact C++ over the same packed layout as the GPU kernels.
// It is the reference the CUDA backend is compared with, so it favours clarity over speed.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "common/backend.h"
#include "common/codes.h"
#include "common/quant.h"
#include "common/status.h"
#include "host/host_conv.h"
#include "nn/nn_host.h"

namespace apnn {
namespace {

class HostBackend final : public Backend {
 public:
  void info(apnn_context_info_t* info) const override {
    info->backend = APNN_BACKEND_HOST;
    std::strncpy(info->device_name, "host", sizeof(info->device_name) - 1);
    info->compute_capability = 0;
    info->multiprocessors = 1;
  }

  void* allocate(size_t bytes) override {
    void* mem = std::calloc(bytes, 1);
    require(mem != nullptr, APNN_STATUS_OUT_OF_MEMORY,
            "host allocation of " + std::to_string(bytes) + " bytes failed");
    return mem;
  }
  void release(void* mem) noexcept override { std::free(mem); }
  void write(void* mem, const void* host, size_t bytes) override { std::memcpy(mem, host, bytes); }
  void read(void* host, const void* mem, size_t bytes) override { std::memcpy(host, mem, bytes); }
  void synchronize() override {}

  void pack(const void* codes, apnn_dtype_t dtype, PackedMatrix& out) override {
    const apnn_quant_t& q = out.quant;
    std::memset(out.planes_mem, 0, out.total_words() * sizeof(uint32_t));
    std::memset(out.row_sums_mem, 0, out.rows_padded * sizeof(int32_t));
    for (int64_t r = 0; r < out.rows; ++r) {
      int64_t sum = 0;
      for (int64_t k = 0; k < out.cols; ++k) {
        const int32_t code = load_code(codes, dtype, r * out.cols + k);
        if (!code_valid(code, q.bits, q.encoding)) {
          throw Error(APNN_STATUS_INVALID_ARGUMENT,
                      "code " + std::to_string(code) + " at (" + std::to_string(r) + ", " + std::to_string(k) +
                          ") is outside " + std::to_string(code_min(q.bits, q.encoding)) + ".." +
                          std::to_string(code_max(q.bits, q.encoding)) + " for " + std::to_string(q.bits) +
                          "-bit " + encoding_name(q.encoding) + " codes");
        }
        const uint32_t bits = code_bits(code, q.bits, q.encoding);
        for (int i = 0; i < q.bits; ++i) {
          if ((bits >> i) & 1u) out.planes_mem[(i * out.rows_padded + r) * out.words + k / 32] |= 1u << (k % 32);
        }
        sum += plane_part(code, q.encoding);
      }
      out.row_sums_mem[r] = static_cast<int32_t>(sum);
    }
  }

  void gemm(const PackedMatrix& x, const PackedMatrix& w, int32_t* y) override {
    const int p = x.quant.bits, q = w.quant.bits;
    const int64_t K = x.cols, words = x.words;
    const int64_t ox = real_offset(x.quant), ow = real_offset(w.quant);
    auto rows = [&](int64_t m_begin, int64_t m_end) {
      for (int64_t m = m_begin; m < m_end; ++m) {
        for (int64_t n = 0; n < w.rows; ++n) {
          // sum_k Px*Pw as a weighted sum of AND-popcounts of bit-planes...
          int64_t acc = 0;
          for (int i = 0; i < p; ++i) {
            const uint32_t* xr = x.planes_mem + (i * x.rows_padded + m) * words;
            for (int j = 0; j < q; ++j) {
              const uint32_t* wr = w.planes_mem + (j * w.rows_padded + n) * words;
              int64_t pop = 0;
              for (int64_t t = 0; t < words; ++t) pop += __builtin_popcount(xr[t] & wr[t]);
              acc += static_cast<int64_t>(plane_coefficient(i, p, x.quant.encoding)) *
                     plane_coefficient(j, q, w.quant.encoding) * pop;
            }
          }
          // ...plus the rank-1 corrections for the offsets (binary -1, zero points).
          acc += ow * x.row_sums_mem[m] + ox * w.row_sums_mem[n] + K * ox * ow;
          y[m * w.rows + n] = static_cast<int32_t>(acc);
        }
      }
    };
    const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), x.rows));
    std::vector<std::thread> pool;
    const int64_t chunk = (x.rows + threads - 1) / threads;
    for (int64_t t = 0; t < threads; ++t) {
      const int64_t b = t * chunk, e = std::min(x.rows, b + chunk);
      if (b < e) pool.emplace_back(rows, b, e);
    }
    for (auto& th : pool) th.join();
  }

  std::string gemm_kernel_name(const PackedMatrix&, const PackedMatrix&) const override {
    return "host_bitplane_popcount";
  }

  void set_gemm_override(const GemmOverride&) override {}

  void conv2d(const ConvCall& call) override {
    host_conv2d(call, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  std::string conv2d_kernel_name(const ConvCall&) const override { return "host_conv_popcount"; }

  void pack_input(const InputPackCall& call) override { host_pack_input(call, host_threads()); }
  void max_pool(const PoolCall& call) override { host_max_pool(call, host_threads()); }
  static int host_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

  double benchmark(const std::function<void()>& op, int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) op();
    std::vector<double> times;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      op();
      const auto t1 = std::chrono::steady_clock::now();
      times.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
  }
};

}  // namespace

std::unique_ptr<Backend> make_host_backend() { return std::make_unique<HostBackend>(); }

}  // namespace apnn
