// Errors inside libapnn: thrown as apnn::Error, turned into a status code plus a
// thread-local message at the C API boundary (cuda/api.cc).
#pragma once

#include <stdexcept>
#include <string>

#include "apnn/apnn.h"

namespace apnn {

class Error : public std::runtime_error {
 public:
  Error(apnn_status_t status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  apnn_status_t status() const { return status_; }

 private:
  apnn_status_t status_;
};

// Throws Error(status, message) unless `condition` holds.
inline void require(bool condition, apnn_status_t status, const std::string& message) {
  if (!condition) throw Error(status, message);
}

inline void require_arg(bool condition, const std::string& message) {
  require(condition, APNN_STATUS_INVALID_ARGUMENT, message);
}

// Thread-local last error message, read by apnn_last_error().
void set_last_error(const std::string& message);
const char* last_error();

}  // namespace apnn
