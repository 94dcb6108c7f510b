#include "common/quant.h"

#include <algorithm>
#include <cstdlib>

#include "common/status.h"

namespace apnn {

const char* encoding_name(apnn_encoding_t enc) {
  switch (enc) {
    case APNN_ENCODING_UNSIGNED: return "unsigned";
    case APNN_ENCODING_SIGNED: return "signed";
    case APNN_ENCODING_BINARY: return "binary";
  }
  return "unknown";
}

void validate_quant(const apnn_quant_t* quant, const char* what) {
  require_arg(quant != nullptr, std::string(what) + ": quantization parameters are NULL");
  const int e = static_cast<int>(quant->encoding);
  require_arg(e >= APNN_ENCODING_UNSIGNED && e <= APNN_ENCODING_BINARY,
              std::string(what) + ": unknown encoding " + std::to_string(e));
  require_arg(quant->bits >= 1 && quant->bits <= kMaxBits,
              std::string(what) + ": bits must be in 1..8, got " + std::to_string(quant->bits));
  require_arg(quant->encoding != APNN_ENCODING_BINARY || quant->bits == 1,
              std::string(what) + ": the binary (+-1) encoding needs bits == 1, got " +
                  std::to_string(quant->bits));
  require_arg(quant->zero_point >= -65536 && quant->zero_point <= 65536,
              std::string(what) + ": zero_point " + std::to_string(quant->zero_point) +
                  " is outside -65536..65536");
}

int64_t max_abs_real(const apnn_quant_t& q) {
  const int64_t lo = static_cast<int64_t>(code_min(q.bits, q.encoding)) - q.zero_point;
  const int64_t hi = static_cast<int64_t>(code_max(q.bits, q.encoding)) - q.zero_point;
  return std::max(std::llabs(lo), std::llabs(hi));
}

}  // namespace apnn
