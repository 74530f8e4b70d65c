"""build_info() reports what was built; the CPU backend is always there."""
import os
import shutil

import pytest

import chatanyone
from chatanyone import ops


def test_build_info_describes_the_build():
    info = chatanyone.build_info()
    assert info["loaded"] is True
    assert "cpu" in info["backends"]
    assert info["compiler"] and info["build_type"]
    assert info["threads"] == ops.get_num_threads() >= 1
    if "cuda" in info["backends"]:
        assert info["cuda_version"].count(".") >= 1
        archs = info["cuda_architectures"].split(",")
        assert "75-real" in archs and "90-virtual" in archs and "native" not in archs
        assert isinstance(info["cuda_devices"], int)  # -1: no driver on this machine
    else:
        assert info["cuda_version"] is None and info["cuda_devices"] == 0


def test_nvcc_present_means_cuda_built():
    """CI builds with nvcc on PATH and CHATANYONE_CUDA=AUTO: the CUDA kernels must be compiled."""
    if os.environ.get("CHATANYONE_CUDA", "AUTO").upper() == "OFF" or shutil.which("nvcc") is None:
        pytest.skip("no nvcc on PATH, or CHATANYONE_CUDA=OFF")
    assert "cuda" in chatanyone.build_info()["backends"]
