#!/usr/bin/env bash
# On the GPU machine: puts the staged wheels and libraries in place, then runs a command.
#   bash tools/device/run.sh python3 -m pytest tests/test_gemm.py
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .stage/whl/*.whl >/dev/null || exit 1
export PYTHONPATH="/tmp/site:$PWD/python:$PWD/tools${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export APNN_LIBRARY="$PWD/.stage/libapnn.so"
[ -f .stage/libapnn_baselines.so ] && export APNN_BASELINES_LIBRARY="$PWD/.stage/libapnn_baselines.so"
exec "$@"
