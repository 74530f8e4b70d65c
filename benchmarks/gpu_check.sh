#!/usr/bin/env bash
# One call on a GPU machine: build chatanyone with CHATANYONE_CUDA=ON, run the kernel tests (their
# CUDA parameters now run), check every CUDA kernel against the CPU path and print kernel timings,
# then check frames on the GPU (DLPack) and time the Session per preset.
#   bash benchmarks/gpu_check.sh            (PYTHON=/path/to/python to pick the interpreter;
#                                            GPU_STASH=dir: the wheels gpu_carry.sh split, see there)
# Needs: nvcc, a CUDA GPU, and a Python with torch (CUDA build), pytest, hypothesis, numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

# The run time's wheels, carried in pieces by benchmarks/gpu_carry.sh (an offline machine whose calls
# each carry only so much): assembled and installed under /tmp/site when GPU_STASH names their folder.
if [ -n "${GPU_STASH:-}" ]; then
  ls "$GPU_STASH"/part[0-9]* >/dev/null || { echo "GPU_STASH=$GPU_STASH holds no part00, part01, ..." >&2; exit 2; }
  rm -rf /tmp/gpu_wheels && mkdir -p /tmp/gpu_wheels
  cat "$GPU_STASH"/part[0-9]* | tar xf - -C /tmp/gpu_wheels
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/gpu_wheels/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  # onnxruntime-gpu's CUDA provider loads CUDA's and cuDNN's libraries by name: point it at the
  # nvidia-* packages the machine's Python already has (torch's)
  nv=$("$PY" -c "import glob, nvidia; print(':'.join(d for p in nvidia.__path__ for d in sorted(glob.glob(p + '/*/lib') + glob.glob(p + '/*/*/lib'))))" 2>/dev/null || true)
  [ -n "$nv" ] && export LD_LIBRARY_PATH="$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "== run time wheels from $GPU_STASH: $(cd /tmp/gpu_wheels && ls *.whl | tr '\n' ' ')"
fi

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
