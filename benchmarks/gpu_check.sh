#!/usr/bin/env bash
# One call on a GPU machine: build chatanyone with CHATANYONE_CUDA=ON, run the kernel tests (their
# CUDA parameters now run), check every CUDA kernel against the CPU path and print kernel timings,
# then check frames on the GPU (DLPack) and time the Session per preset.
#   bash benchmarks/gpu_check.sh            (PYTHON=/path/to/python to pick the interpreter)
# Needs: nvcc, a CUDA GPU, and a Python with torch (CUDA build), pytest, hypothesis, numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

echo "== GPU"; nvidia-smi -L || echo "nvidia-smi not found"
echo "== nvcc"; nvcc --version | tail -2

echo "== build (CHATANYONE_CUDA=ON)"
start=$(date +%s)
# Offline machines cannot fetch the build requirements: reuse installed ones when present.
if "$PY" -c "import scikit_build_core, nanobind" 2>/dev/null; then
  CHATANYONE_CUDA=ON "$PY" -m pip install --no-deps --no-build-isolation -e . -q
else
  CHATANYONE_CUDA=ON "$PY" -m pip install --no-deps -e . -q
fi
echo "build took $(( $(date +%s) - start )) s"

echo "== kernel tests"
"$PY" -m pytest tests/test_ops_warp.py tests/test_ops_heatmaps.py tests/test_ops_ddim.py tests/test_ops_args.py \
  tests/test_ops_mesh_flow.py -q -rs

echo "== CUDA vs CPU checks and timings"
"$PY" benchmarks/gpu_check.py
