"""csrc/cuda/mesh_flow.cu run on the CPU: its kernels compiled as C++ under a sequential emulation
of the launch model (tests/cuda_emu/shim.h) and compared bit for bit with the CPU kernel.

No GPU is lent to this project's CI, so this is what checks the CUDA path's logic (the setup per
block, the bounding-box walk, the key, the resolve) in every run. What it cannot check: device
arithmetic (the build uses --fmad=false and IEEE division on both sides for that) and real
concurrency (atomicMin on the keys is order-independent by design); benchmarks/gpu_check.py does
on a GPU.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMU = Path(__file__).resolve().parent / "cuda_emu"


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_cuda_mesh_flow_kernels_match_the_cpu_kernel(tmp_path):
    cu = (ROOT / "csrc/cuda/mesh_flow.cu").read_text()
    cu = cu.replace('#include "check.cuh"', "")  # the shim provides blocks_for / finish_launch
    cu, n = re.subn(r"(\w+)<<<([^,]+), ([^>]+)>>>\(([^)]*)\)", r"launch(\1, \2, \3, \4)", cu)
    assert n == 2, "expected the raster and resolve launches in mesh_flow.cu"
    (tmp_path / "mesh_flow_emu.cpp").write_text(cu)
    exe = tmp_path / "emu"
    flags = ["-std=c++17", "-O0", "-ffp-contract=off"]
    subprocess.run(["g++", *flags, "-include", str(EMU / "shim.h"), "-c", str(tmp_path / "mesh_flow_emu.cpp"),
                    "-I", str(ROOT / "csrc/cuda"), "-o", str(tmp_path / "emu.o")], check=True, cwd=ROOT / "csrc/cuda")
    subprocess.run(["g++", *flags, str(EMU / "main.cpp"), str(ROOT / "csrc/cpu/mesh_flow_cpu.cpp"),
                    str(ROOT / "csrc/cpu/parallel.cpp"), str(tmp_path / "emu.o"), "-lpthread", "-o", str(exe)],
                   check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "80/80 cases bit-identical" in r.stdout
