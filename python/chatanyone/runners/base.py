"""Base of every ONNX runner: one class per ONNX graph, providers chosen from what exists.

A runner owns one ``onnxruntime.InferenceSession``. Providers are *requested* (by the caller or the
``CHATANYONE_PROVIDERS`` environment variable, comma separated) and filtered by what the installed
ONNX Runtime reports as available; nothing is hard-coded, and a missing provider is logged once at
debug level instead of warning on every run.
"""
from __future__ import annotations

import logging
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

log = logging.getLogger("chatanyone")

# preference order when the caller asks for nothing: GPU first where the build has it
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")

_warned: set[str] = set()
_warn_lock = threading.Lock()


def available_providers() -> list[str]:
    """Providers the installed ONNX Runtime can use (``[]`` when onnxruntime is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def choose_providers(requested: Sequence[str] | str | None = None) -> list[str]:
    """Filter the requested providers by those that exist, keeping the caller's order.

    Args:
        requested: provider names (``"CUDAExecutionProvider"``) or short names (``"cuda"``,
            ``"cpu"``); a comma-separated string is accepted. ``None`` reads
            ``CHATANYONE_PROVIDERS`` and falls back to :data:`DEFAULT_PROVIDERS`.
    Returns:
        The available subset, never empty: CPU is appended as the last resort.
    """
    if requested is None:
        requested = os.environ.get("CHATANYONE_PROVIDERS") or DEFAULT_PROVIDERS
    if isinstance(requested, str):
        requested = [r.strip() for r in requested.split(",") if r.strip()]
    have = available_providers()
    chosen: list[str] = []
    for name in requested:
        full = name if name.endswith("ExecutionProvider") else {
            "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
            "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
            "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider",
        }.get(name.lower(), name)
        if full in have:
            if full not in chosen:
                chosen.append(full)
        else:
            with _warn_lock:
                if full not in _warned:
                    _warned.add(full)
                    log.debug("ONNX Runtime provider %s is not available here (have %s)", full, have)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def weights_path(name: str) -> Path:
    """Path of a file shipped in ``chatanyone/weights`` (found through the package, not ``../``)."""
    # through the top package (a real package in every install mode, editable included)
    return Path(str(resources.files("chatanyone").joinpath("weights", name)))


class OnnxRunner:
    """One ONNX graph in one ONNX Runtime session.

    Subclasses set :attr:`model_name` (a file in ``chatanyone/weights``) and wrap :meth:`run` in a
    typed ``__call__`` that documents shapes. ``run`` blocks until the graph has run.

    Args:
        path: the ``.onnx`` file; defaults to ``weights/<model_name>``.
        providers: requested providers (see :func:`choose_providers`).
        threads: intra-op threads (0: ONNX Runtime's default).
    """

    model_name: str = ""

    def __init__(self, path: str | os.PathLike | None = None, *, providers=None, threads: int = 0):
        import onnxruntime as ort  # runtime dependency; imported here so `import chatanyone` stays light

        self.path = Path(path) if path is not None else weights_path(self.model_name)
        if not self.path.is_file():
            raise FileNotFoundError(f"{type(self).__name__}: ONNX model not found at {self.path}")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.providers = choose_providers(providers)
        self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph. ``feeds`` maps every input name to an array; float inputs are cast to
        float32. Returns the outputs in :attr:`output_names` order."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"{type(self).__name__}: missing inputs {missing}; expects {self.input_names}")
        prepared = {}
        for n in self.input_names:
            a = np.asarray(feeds[n])
            t = self._input_types[n]
            if t == "tensor(float)" and a.dtype != np.float32:
                a = a.astype(np.float32)
            elif t == "tensor(int64)" and a.dtype != np.int64:
                a = a.astype(np.int64)
            prepared[n] = np.ascontiguousarray(a)
        return self.session.run(self.output_names, prepared)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name}, providers={self.providers})"


def frame_uploader(device: tuple[str, int] | None):
    """For a parsed ``SessionConfig.frame_device`` (``config.parse_frame_device``): None for the
    host (``device`` None), else a function ``uint8 [H,W,3] -> onnxruntime.OrtValue`` on that device
    (DLPack: ``__dlpack__``/``__dlpack_device__``).

    Raises ``ValueError`` naming ``frame_device`` when the device is not usable here (for "cuda":
    no CUDAExecutionProvider in this onnxruntime, i.e. not the onnxruntime-gpu build).
    """
    if device is None:
        return None
    kind, idx = device
    if kind == "cuda" and "CUDAExecutionProvider" not in available_providers():
        raise ValueError(f"SessionConfig.frame_device={kind}:{idx}: this onnxruntime has no CUDA "
                         f"(providers: {available_providers()}); install onnxruntime-gpu or use 'host'")

    import onnxruntime as ort

    def upload(image: np.ndarray):
        # CPU: the OrtValue wraps the array (kept alive by it); CUDA: one host-to-device copy
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(image), kind, idx)
    return upload
