#!/usr/bin/env bash
# GPU check of the CUTLASS / TCBNN-style baselines (no Bazel needed). From the repository root:
#   PYTHONPATH=python APNN_BASELINES_LIBRARY=/path/libapnn_baselines.so bash tools/device/check_baselines.sh
# (or through tools/device/run.sh, which sets both from .stage/). Needs numpy, pytest, absl-py, cffi.
# Runs the GPU tests (every baseline against its numpy oracle), then the three benchmarks on the
# seed shapes: GEMM M=64, N=K=128..1024; conv 16x16 3x3 C=O=128..1024 batch 1; networks batch 8.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/python:$PWD/tests"
export PYTHONUNBUFFERED=1
if [ -z "${APNN_BASELINES_LIBRARY:-}" ]; then
  for candidate in .stage/libapnn_baselines.so bazel-bin/baselines/libapnn_baselines.so; do
    [ -f "$candidate" ] && export APNN_BASELINES_LIBRARY="$PWD/$candidate" && break
  done
fi
echo "== libapnn_baselines: ${APNN_BASELINES_LIBRARY:-<not set: searching near the package>}"
status=0
# On sm_90+ the CUTLASS b1 XOR-popc kernels are refused (UNSUPPORTED, nothing launched: their mma is
# assert(0) there); the XOR rows print "XOR: unsupported on sm_90 (...)" and bnn runs on AND-popc.
MAX_LINES=${CHECK_MAX_LINES:-400}  # per step: a runaway failure (e.g. a device-side assert) prints thousands
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  # The first MAX_LINES lines live, then only the last 40 (the summary) after a count of those left out.
  timeout "$limit" "$@" 2>&1 | awk -v max="$MAX_LINES" -v tail=40 '
    NR <= max { print; fflush(); next }
    { buf[NR % tail] = $0 }
    END {
      if (NR <= max) exit
      first = NR - tail + 1; if (first <= max) first = max + 1
      if (first > max + 1) print "... (" first - max - 1 " lines left out)"
      for (i = first; i <= NR; i++) print buf[i % tail]
    }'
  local rc=${PIPESTATUS[0]}
  [ $rc -ne 0 ] && { echo "!! $name failed (rc=$rc)"; status=1; }
  return 0
}
step "pytest tests/test_baselines.py" 90 \
  python3 -m pytest -q -p no:cacheprovider --noconftest -rs tests/test_baselines.py
step "GEMM INT1 (XOR, AND) and INT4, M=64 N=K=128..1024" 30 \
  python3 tools/bench_baseline_gemm.py --bits=1,4 --shapes=seed --iters=50 --warmup=5
step "conv INT1 (XOR, AND) and INT4, 16x16 3x3 C=O=128..1024 batch 1" 40 \
  python3 tools/bench_baseline_conv.py --bits=1,4 --iters=50 --warmup=5
step "networks, batch 8" 60 \
  python3 tools/bench_baseline_nn.py --model=all --precision=all --batch=8 --iters=10 --warmup=2
echo "== check_baselines: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
