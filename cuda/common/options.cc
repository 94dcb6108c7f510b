#include "common/options.h"

#include <cstdlib>
#include <string>

#include "common/status.h"

namespace apnn {
namespace {

// A 0 / 1 switch: "0" turns it off, any other value on; unset keeps `fallback`.
int32_t env_switch(const char* name, int32_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  return std::string(v) == "0" ? 0 : 1;
}

apnn_options_t read_environment() {
  apnn_options_t o = default_options();
  if (const char* v = std::getenv("APNN_CONV_TILES")) {
    const std::string s(v);
    if (s == "legacy") o.conv_tiles = APNN_CONV_TILES_LEGACY;
    if (s.size() == 1 && s[0] >= '0' && s[0] < '0' + APNN_CONV_TILE_CONFIGS) o.conv_tiles = s[0] - '0';
  }
  o.conv_halo = env_switch("APNN_CONV_HALO", o.conv_halo);
  o.conv_register_finish = env_switch("APNN_CONV_REGISTER_FINISH", o.conv_register_finish);
  o.derived_thresholds = env_switch("APNN_DERIVED_THRESHOLDS", o.derived_thresholds);
  o.dependent_launch = env_switch("APNN_DEPENDENT_LAUNCH", o.dependent_launch);
  o.first_layer_taps = env_switch("APNN_FIRST_LAYER_TAPS", o.first_layer_taps);
  o.network_im2col = env_switch("APNN_NETWORK_IM2COL", o.network_im2col);
  o.network_from_image = env_switch("APNN_NETWORK_FROM_IMAGE", o.network_from_image);
  o.network_pack_taps = env_switch("APNN_NETWORK_PACK_TAPS", o.network_pack_taps);
  o.network_unpadded = env_switch("APNN_NETWORK_UNPADDED", o.network_unpadded);
  if (const char* v = std::getenv("APNN_NETWORK_MAX_CALL_PIXELS")) {
    const long long n = std::atoll(v);
    if (n > 0) o.network_max_call_pixels = n;
  }
  return o;
}

void require_in(int64_t v, int64_t lo, int64_t hi, const char* field) {
  require_arg(v >= lo && v <= hi, std::string("options: ") + field + " must be in " + std::to_string(lo) + ".." +
                                       std::to_string(hi) + ", got " + std::to_string(v));
}

}  // namespace

apnn_options_t default_options() {
  apnn_options_t o;
  o.conv_tiles = APNN_OPTION_AUTO;
  o.conv_halo = APNN_OPTION_AUTO;
  o.conv_register_finish = 1;
  o.derived_thresholds = 1;
  o.dependent_launch = 1;
  o.first_layer_taps = APNN_OPTION_AUTO;
  o.network_im2col = 1;
  o.network_from_image = 1;
  o.network_pack_taps = 1;
  o.network_unpadded = 1;
  o.network_max_call_pixels = 0;
  return o;
}

const apnn_options_t& environment_options() {
  static const apnn_options_t options = read_environment();
  return options;
}

void validate_options(const apnn_options_t& o) {
  require_in(o.conv_tiles, APNN_CONV_TILES_LEGACY, APNN_CONV_TILE_CONFIGS - 1, "conv_tiles");
  require_in(o.conv_halo, APNN_OPTION_AUTO, 1, "conv_halo");
  require_in(o.conv_register_finish, 0, 1, "conv_register_finish");
  require_in(o.derived_thresholds, 0, 1, "derived_thresholds");
  require_in(o.dependent_launch, 0, 1, "dependent_launch");
  require_in(o.first_layer_taps, APNN_OPTION_AUTO, 1, "first_layer_taps");
  require_in(o.network_im2col, 0, 1, "network_im2col");
  require_in(o.network_from_image, 0, 1, "network_from_image");
  require_in(o.network_pack_taps, 0, 1, "network_pack_taps");
  require_in(o.network_unpadded, 0, 1, "network_unpadded");
  require_in(o.network_max_call_pixels, 0, int64_t{1} << 40, "network_max_call_pixels");
}

}  // namespace apnn
