#!/usr/bin/env bash
# Builds what the GPU machine needs (it has no Bazel and no cffi) into .stage/ (git-ignored):
# the shared libraries and the cffi/pycparser wheels for its Python 3.12. Then run, with the
# device tool, carrying `.stage`:   bash tools/device/run.sh <check script> [args]
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/bazel build //:libapnn.so $(tools/bazel query 'kind(cc_binary, //baselines/...)' 2>/dev/null | tr '\n' ' ')
mkdir -p .stage/whl
cp -f bazel-bin/libapnn.so .stage/
for lib in bazel-bin/baselines/*.so; do [ -f "$lib" ] && cp -f "$lib" .stage/; done
if ! ls .stage/whl/cffi-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .stage/whl cffi==2.0.0 pycparser==2.23
fi
# The model importer's packages the GPU image lacks (it has onnx, onnxruntime, onnxscript, torch):
# qonnx and what it imports, Brevitas and its exporter's onnxoptimizer.
if ! ls .stage/whl/qonnx-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .stage/whl qonnx clize sigtools od docutils bitstring tibs toposort importlib-metadata \
    brevitas dependencies unfoldNd onnxoptimizer
fi
ls -la .stage
