#!/usr/bin/env bash
# Runs a test under the sanitizer runtimes of the compiler that built libapnn.so (--config=asan):
# Python itself is not instrumented, so ASan's runtime must be loaded first.
set -euo pipefail
asan="$(${CC:-gcc} -print-file-name=libasan.so)"
ubsan="$(${CC:-gcc} -print-file-name=libubsan.so)"
export LD_PRELOAD="${asan}:${ubsan}${LD_PRELOAD:+:${LD_PRELOAD}}"
exec "$@"
