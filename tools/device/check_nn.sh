#!/usr/bin/env bash
# On the GPU machine, from the repository root, with PYTHONPATH=python:tools (or via
# tools/device/run.sh) and APNN_LIBRARY=<prebuilt libapnn.so>: the network tests (host and CUDA,
# bit for bit against the numpy oracle), then whole networks w1a2 at batch 8 and 256 with the
# PyTorch FP16 / INT8 comparison. About 3 minutes.
#   bash tools/device/check_nn.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PYTHONPATH:-python}:$PWD/python:$PWD/tools:$PWD/tests"
export PYTHONUNBUFFERED=1
status=0

echo "== pytest tests/test_network.py tests/test_network_errors.py tests/test_example_digits.py"
timeout 100 python3 -m pytest -q -rs -p no:cacheprovider tests/test_network.py tests/test_network_errors.py \
  tests/test_example_digits.py 2>&1 | tail -25
[ "${PIPESTATUS[0]}" = 0 ] || status=1

mkdir -p /tmp/bench_nn
for batch in 8 256; do
  for model in alexnet vgg_variant resnet18; do
    echo "== bench_nn --model=${model} --w_bit=1 --x_bit=2 --batch=${batch} --compare"
    iters=30; [ "${batch}" = 256 ] && iters=10
    timeout 60 python3 tools/bench_nn.py --model="${model}" --w_bit=1 --x_bit=2 --batch="${batch}" --compare \
      --iters="${iters}" --warmup=3 --layers="$([ "${batch}" = 8 ] && echo true || echo false)" \
      --json_out="/tmp/bench_nn/${model}_${batch}.json" 2>&1 | grep -v "^model \|^$" || status=1
  done
done

python3 - <<'PY'
import glob, json
rows = [r for f in sorted(glob.glob("/tmp/bench_nn/*.json")) for r in json.load(open(f))]
print("\nmodel        batch   apnn ms   fp16 ms  x fp16   int8-lb ms  target")
targets = {("alexnet", 8): "<= 0.10 ms"}
for r in sorted(rows, key=lambda r: (r["batch"], r["model"])):
    fp16, i8 = r.get("torch_fp16_ms"), r.get("torch_int8_gemm_ms")
    t = targets.get((r["model"], r["batch"]), ">= 3x fp16" if r["batch"] == 8 else ">= 4x fp16")
    print(f"{r['model']:<12} {r['batch']:>5} {r['apnn_ms']:9.4f} " + (f"{fp16:9.4f} {fp16 / r['apnn_ms']:7.2f}x"
          if fp16 else f"{'-':>9} {'-':>8}") + (f" {i8:12.4f}" if i8 else f" {'-':>12}") + f"  {t}")
PY
echo "== check_nn: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit "${status}"
