// Host loops of the network helpers: the per-pixel work of nn_types.h over all pixels,
// split across threads by contiguous pixel ranges.
#include "nn/nn_host.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace apnn {
namespace {

template <typename F>
void parallel_rows(int64_t rows, int threads, F&& body) {
  const int64_t count = std::max<int64_t>(1, std::min<int64_t>(threads, rows / 256 + 1));
  const int64_t chunk = (rows + count - 1) / count;
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t begin = t * chunk, end = std::min(rows, begin + chunk);
    if (begin < end) pool.emplace_back([&body, begin, end] {
      for (int64_t r = begin; r < end; ++r) body(r);
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace

void host_pack_input(const InputPackCall& call, int threads) {
  parallel_rows(call.out.rows, threads, [&](int64_t r) { pack_input_row(call, r); });
}

void host_max_pool(const PoolCall& call, int threads) {
  parallel_rows(call.y.rows, threads, [&](int64_t r) { max_pool_row(call, r); });
}

}  // namespace apnn
