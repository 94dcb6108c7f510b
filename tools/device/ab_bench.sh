#!/usr/bin/env bash
# On the GPU machine, via tools/device/run.sh: a same-run A/B of two builds of libapnn.so on the
# GEMM, convolution and network benchmarks, each benchmark run for A then B back to back (same
# GPU, same clocks), then a table of B / A per row. bench_gemm and bench_conv check every result
# against the numpy oracle before timing (a wrong one fails the run); bench_nn checks finiteness.
#   bash tools/device/run.sh bash tools/device/ab_bench.sh A.so B.so [quick]
# About 4 minutes (quick: 2).
set -uo pipefail
cd "$(dirname "$0")/../.."
lib_a=$(realpath "$1") lib_b=$(realpath "$2") mode="${3:-full}"
out="${OUT:-/tmp}/ab_bench"
mkdir -p "${out}"
export PYTHONPATH="${PYTHONPATH:-python}:$PWD/tools"

run_both() {  # name, then the benchmark command line (json_out appended)
  local name=$1
  shift
  for side in a b; do
    local lib=${lib_a}
    [ "${side}" = b ] && lib=${lib_b}
    APNN_LIBRARY="${lib}" timeout 120 "$@" --json_out="${out}/${name}_${side}.json" >"${out}/${name}_${side}.log" 2>&1 ||
      echo "!! ${name} (${side}) failed: $(tail -n 3 "${out}/${name}_${side}.log")"
  done
}

run_both gemm python3 tools/bench_gemm.py --w_bit=1,2 --x_bit=2 --shapes=large --iters=50 --warmup=5
run_both conv_b8 python3 tools/bench_conv.py --shapes=resnet --batch=8 --iters=50 --warmup=5
models=alexnet,vgg_variant,resnet18,resnet50
[ "${mode}" = quick ] && models=resnet18
for batch in 8 256; do
  run_both "nn_b${batch}" python3 tools/bench_nn.py --model="${models}" --batch="${batch}" --layers=false --iters=20 --warmup=3
done

python3 - "${out}" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print(f"{'benchmark':<44} {'A':>10} {'B':>10}  {'B/A':>6}  exact")
for a_path in sorted(glob.glob(os.path.join(out, "*_a.json"))):
    b_path = a_path[:-6] + "b.json"
    if not os.path.exists(b_path):
        continue
    rows_a, rows_b = json.load(open(a_path)), json.load(open(b_path))
    for ra, rb in zip(rows_a, rows_b):
        if "apnn_ms" in ra:
            name, ta, tb = f"nn {ra['model']} b{ra['batch']} (ms)", ra["apnn_ms"], rb["apnn_ms"]
        elif "fused_us" in ra:
            name, ta, tb = f"conv {ra['name']} b{ra['n']} fused (us)", ra["fused_us"], rb["fused_us"]
        else:
            name = f"gemm w{ra['w_bit']}a{ra['x_bit']} {ra['M']}x{ra['N']}x{ra['K']} (us)"
            ta, tb = ra["us"], rb["us"]
        exact = all(r.get("exact", True) and r.get("check", "finite") == "finite" for r in (ra, rb))
        print(f"{name:<44} {ta:10.4f} {tb:10.4f}  {tb / ta:6.3f}  {'yes' if exact else 'NO'}")
PY
