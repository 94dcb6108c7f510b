#!/usr/bin/env bash
# On the GPU machine (no Bazel), from the repository root, through tools/device/run.sh (which sets
# PYTHONPATH=python:tools, APNN_LIBRARY and APNN_BASELINES_LIBRARY from the staged .stage/):
#   bash tools/device/run.sh bash tools/device/report.sh [extra report.py flags]
# Runs tools/report.py on the seed paper's full GEMM, CONV and NN tables with APNN, the CUTLASS /
# TCBNN baselines and cuBLAS / cuDNN (PyTorch) in one process, into $OUT/report:
#   report.md, results.json, gemm_tops.png, conv_tops.png, nn_latency.png, report.log
# (6 files, one folder deep: within what the device tool brings back). About 3-4 minutes on an
# H100; report.md / results.json are rewritten after each section, so a run cut short by the
# time limit still brings back the finished sections.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/python:$PWD/tools"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg
export MPLCONFIGDIR="${TMPDIR:-/tmp}/apnn-mpl"
out_dir="${OUT:-/tmp/apnn-out}/report"
mkdir -p "${out_dir}"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || true
timeout 570 python3 tools/report.py --out_dir="${out_dir}" --shapes=seed \
  --iters=50 --warmup=5 --nn_iters=5 --nn_warmup=2 "$@" 2>&1 | tee "${out_dir}/report.log"
status=${PIPESTATUS[0]}
[ "${status}" = 124 ] && echo "!! report.py ran past 570 s: the finished sections are in ${out_dir}/report.md"
ls -la "${out_dir}"
exit "${status}"
