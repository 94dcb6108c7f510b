// The kernel-choice options (apnn_options_t, apnn.h "Kernel choices"): defaults, the environment's
// debugging overrides, and validation. The one place that reads the APNN_* switches.
#pragma once

#include "apnn/apnn.h"

namespace apnn {

// apnn_options_init's defaults.
apnn_options_t default_options();

// The defaults with every APNN_<FIELD> environment variable applied, read once per process:
// what a new context starts with.
const apnn_options_t& environment_options();

// Throws INVALID_ARGUMENT naming the first field out of range.
void validate_options(const apnn_options_t& options);

}  // namespace apnn
