"""Array introspection shared by the ops wrappers: numpy, torch and cupy, without importing any
framework that the caller did not already use. Raises the errors the API promises."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._native import core

_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


@dataclass(frozen=True)
class ArrayInfo:
    """What the checks need to know about one array argument."""

    framework: str  # "numpy" | "torch" | "cupy"
    shape: tuple
    dtype: str  # "float32", "float16", ...
    cuda: bool
    device: str  # e.g. "cpu", "cuda:0"
    contiguous: bool


def _framework(a) -> str:
    if isinstance(a, np.ndarray):
        return "numpy"
    mod = type(a).__module__.split(".")[0]
    if mod in ("torch", "cupy"):
        return mod
    return ""


def info(a, name: str) -> ArrayInfo:
    """Describe `a`; raise TypeError naming `name` if it is not a numpy, torch or cupy array."""
    fw = _framework(a)
    if fw == "numpy":
        return ArrayInfo("numpy", tuple(a.shape), a.dtype.name, False, "cpu", a.flags.c_contiguous)
    if fw == "torch":
        if a.requires_grad:  # torch refuses to export these through DLPack
            raise TypeError(f"{name}: expected a tensor without autograd (call .detach()); "
                            "chatanyone.ops kernels are not differentiable")
        dev = a.device
        return ArrayInfo("torch", tuple(a.shape), str(a.dtype).replace("torch.", ""), dev.type == "cuda",
                         str(dev), a.is_contiguous())
    if fw == "cupy":
        return ArrayInfo("cupy", tuple(a.shape), a.dtype.name, True, f"cuda:{a.device.id}", a.flags.c_contiguous)
    raise TypeError(f"{name}: expected a numpy array, torch tensor or cupy array, got {type(a).__name__}")


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


_backends: list | None = None


def _has_cuda() -> bool:
    global _backends
    if _backends is None:
        _backends = list(core().build_info()["backends"])
    return "cuda" in _backends


def check(a, name: str, *, f16_on_cuda: bool = False, ndim=None, ref: ArrayInfo | None = None,
          ref_name: str = "") -> ArrayInfo:
    """Check one array argument: framework, dtype, C-contiguity, rank, and that it lives on the
    device (and, for float16-capable ops, has the dtype) of `ref`, the call's first array.
    Raises TypeError/ValueError naming `name`, the expectation and what came."""
    i = info(a, name)
    if ref is not None and (i.framework != ref.framework or i.device != ref.device):
        raise ValueError(f"{name}: expected a {ref.framework} array on {ref.device} like {ref_name}, "
                         f"got a {i.framework} array on {i.device}")
    if i.cuda and ref is None and not _has_cuda():
        raise ValueError(f"{name}: got a CUDA array ({i.device}), but this build of chatanyone has no CUDA "
                         "backend; see chatanyone.build_info() and reinstall with CHATANYONE_CUDA=ON on a "
                         "machine with nvcc, or pass CPU arrays")
    if f16_on_cuda and ref is not None:
        allowed = (ref.dtype,)
    elif f16_on_cuda and i.cuda:
        allowed = ("float32", "float16")
    else:
        allowed = ("float32",)
    if i.dtype not in allowed:
        hint = " (float16 is supported for CUDA arrays only)" if f16_on_cuda and i.dtype == "float16" else ""
        like = f" like {ref_name}" if f16_on_cuda and ref is not None else ""
        raise TypeError(f"{name}: expected dtype {' or '.join(allowed)}{like}{hint}, got {i.dtype}")
    if ndim is not None and len(i.shape) not in ((ndim,) if isinstance(ndim, int) else ndim):
        want = ndim if isinstance(ndim, int) else " or ".join(str(n) for n in ndim)
        raise ValueError(f"{name}: expected {want} dimensions, got shape {fmt_shape(i.shape)}")
    if not i.contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got a strided view; call "
                         "np.ascontiguousarray(...) or .contiguous() first")
    return i


def empty(like, ref: ArrayInfo, shape, dtype: str | None = None):
    """A new C-contiguous array in the framework and on the device of `like`."""
    dtype = dtype or ref.dtype
    if ref.framework == "numpy":
        return np.empty(shape, dtype=dtype)
    if ref.framework == "torch":
        import torch  # already imported by the caller

        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=like.device)
    import cupy  # already imported by the caller

    with cupy.cuda.Device(like.device.id):
        return cupy.empty(tuple(shape), dtype=dtype)


def check_bool(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return bool(v)


def check_int(v, name: str, *, minimum: int = 1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    return int(v)


def check_float(v, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite float, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name}: expected a float > 0, got {v}")
    if nonneg and not v >= 0:
        raise ValueError(f"{name}: expected a float >= 0, got {v}")
    return v
