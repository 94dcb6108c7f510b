// The C API of networks (apnn.h, "Networks"): handle checks, then one call into apnn::Network.
#include <memory>
#include <string>

#include "apnn/apnn.h"
#include "common/api_util.h"
#include "common/objects.h"
#include "common/status.h"
#include "nn/network.h"

struct apnn_network {
  apnn_context* ctx = nullptr;
  std::unique_ptr<apnn::Network> net;
};

using apnn::check_context;
using apnn::lock_context;
using apnn::guarded;
using apnn::require_arg;

namespace {

apnn::Network& network(apnn_network_t net) {
  require_arg(net != nullptr && net->net != nullptr, "network is NULL");
  return *net->net;
}

// A network's calls hold its context's lock, like every call on what the context made.
std::unique_lock<std::recursive_mutex> lock_network(apnn_network_t net) {
  require_arg(net != nullptr && net->net != nullptr, "network is NULL");
  return apnn::lock_context(net->ctx);
}

}  // namespace

extern "C" {

apnn_status_t apnn_network_create(apnn_context_t ctx, const apnn_network_input_desc_t* input, apnn_network_t* net) {
  return guarded(__func__, [&] {
    const auto held = lock_context(ctx);
    require_arg(input != nullptr && net != nullptr, "input or net is NULL");
    auto obj = std::make_unique<apnn_network>();
    obj->ctx = ctx;
    obj->net = std::make_unique<apnn::Network>(ctx->kind, ctx->options, *input);
    ctx->live_objects++;
    *net = obj.release();
  });
}

apnn_status_t apnn_network_destroy(apnn_network_t net) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(net != nullptr, "network is NULL");
    net->ctx->live_objects--;
    delete net;
  });
}

apnn_status_t apnn_network_add_conv(apnn_network_t net, const apnn_layer_desc_t* desc, int32_t* id) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(desc != nullptr && id != nullptr, "desc or id is NULL");
    *id = network(net).add_weighted(*desc, false);
  });
}

apnn_status_t apnn_network_add_linear(apnn_network_t net, const apnn_layer_desc_t* desc, int32_t* id) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(desc != nullptr && id != nullptr, "desc or id is NULL");
    *id = network(net).add_weighted(*desc, true);
  });
}

apnn_status_t apnn_network_add_pool(apnn_network_t net, int32_t input, apnn_pool_t pool, int32_t size,
                                    int32_t stride, int32_t pad, int32_t* id) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(id != nullptr, "id is NULL");
    *id = network(net).add_pool(input, pool, size, stride, pad);
  });
}

apnn_status_t apnn_network_add_flatten(apnn_network_t net, int32_t input, int32_t* id) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(id != nullptr, "id is NULL");
    *id = network(net).add_flatten(input);
  });
}

apnn_status_t apnn_network_set_weights(apnn_network_t net, int32_t id, const apnn_layer_weights_t* weights) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(weights != nullptr, "weights is NULL");
    network(net).set_weights(id, *weights);
  });
}

apnn_status_t apnn_network_layer_count(apnn_network_t net, int32_t* count) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(count != nullptr, "count is NULL");
    *count = network(net).layer_count();
  });
}

apnn_status_t apnn_network_layer_info(apnn_network_t net, int32_t id, apnn_layer_info_t* info) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(info != nullptr, "info is NULL");
    *info = network(net).info(id);
  });
}

apnn_status_t apnn_network_plan(apnn_network_t net, int64_t batch) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    network(net).plan(batch);
  });
}

apnn_status_t apnn_network_output_shape(apnn_network_t net, int64_t shape[4], apnn_dtype_t* dtype) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    network(net).output_shape(shape, dtype);
  });
}

apnn_status_t apnn_network_run(apnn_network_t net, const void* input, apnn_dtype_t dtype, void* output) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    network(net).run(input, dtype, output);
  });
}

apnn_status_t apnn_network_benchmark(apnn_network_t net, int32_t warmup, int32_t iters, double* microseconds) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    require_arg(microseconds != nullptr, "microseconds is NULL");
    *microseconds = network(net).benchmark(warmup, iters);
  });
}

apnn_status_t apnn_network_layer_times(apnn_network_t net, double* us, int32_t capacity, int32_t* count) {
  return guarded(__func__, [&] {
    const auto held = lock_network(net);
    apnn::Network& n = network(net);
    require_arg(count != nullptr, "count is NULL");
    require_arg(us != nullptr || capacity == 0, "us is NULL");
    *count = n.layer_count();
    for (int i = 0; i < n.layer_count() && i < capacity; ++i) us[i] = n.layer_time(i);
  });
}

}  // extern "C"
