#!/usr/bin/env bash
# On the GPU machine, from the repository root, with PYTHONPATH=python (or via tools/device/run.sh)
# and APNN_LIBRARY=<prebuilt libapnn.so> set: the convolution tests (host and CUDA), then the
# benchmark at batch 1 and 8 with cuDNN / cuBLAS baselines. About 2 minutes.
#   bash tools/device/check_conv.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PYTHONPATH:-python}:$PWD/tools"
status=0

echo "== pytest tests/test_conv.py tests/test_epilogue.py"
timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/test_conv.py tests/test_epilogue.py 2>&1 | tail -25
[ "${PIPESTATUS[0]}" = 0 ] || status=1

for batch in 1 8; do
  echo "== bench_conv --w_bit=1 --x_bit=2 --batch=${batch} --compare"
  timeout 90 python3 tools/bench_conv.py --w_bit=1 --x_bit=2 --batch="${batch}" --compare --iters=50 || status=1
done
echo "targets: w1a2 C=O=1024 batch 1 <= 9.7 us, batch 8 <= 20 us; fused epilogue <= +10% over conv"
exit "${status}"
