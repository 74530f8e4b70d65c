"""Device parametrization for kernel tests: CPU always; CUDA only with a GPU and a CUDA build."""
import pytest
import torch


def cuda_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    import chatanyone

    return "cuda" in chatanyone.build_info().get("backends", [])


DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not cuda_ready(), reason="needs a GPU and a CUDA build")),
]
