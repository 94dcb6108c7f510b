#!/usr/bin/env bash
# On the GPU machine, via tools/device/run.sh: every test suite on both backends, the Brevitas
# zoo on CUDA (needs torch), and compute-sanitizer memcheck over the CUDA cases of the grouped
# convolution, threshold-epilogue and importer tests. The three run side by side (they share the
# GPU; none of them times anything); logs go to ${OUT:-/tmp}/check_all/*.log. About 5 minutes.
#   bash tools/device/run.sh bash tools/device/check_all.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
logs="${OUT:-/tmp}/check_all"
mkdir -p "${logs}"
export PYTHONPATH="${PYTHONPATH:-python}:$PWD/tests"
pytest=(python3 -m pytest -q -rs -p no:cacheprovider)

timeout 420 "${pytest[@]}" tests --ignore=tests/test_brevitas_zoo.py >"${logs}/suite.log" 2>&1 &
suite=$!
timeout 420 "${pytest[@]}" tests/test_brevitas_zoo.py -k "cuda or refused" >"${logs}/zoo.log" 2>&1 &
zoo=$!
timeout 420 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 \
  "${pytest[@]}" tests/test_grouped_conv.py tests/test_threshold_epilogue.py tests/test_qonnx_import.py \
  -k cuda >"${logs}/memcheck.log" 2>&1 &
memcheck=$!

status=0
for job in suite:${suite} zoo:${zoo} memcheck:${memcheck}; do
  wait "${job#*:}"
  rc=$?
  echo "== ${job%%:*}: exit ${rc}"
  tail -n 15 "${logs}/${job%%:*}.log"
  [ "${rc}" = 0 ] || status=1
done
echo "== check_all: $([ ${status} -eq 0 ] && echo PASSED || echo FAILED)"
exit ${status}
