"""Lazy loader of the native extension ``chatanyone._core``.

``import chatanyone`` never imports the extension; the first kernel call does. A load failure is
logged once, and every later call raises the same :class:`ImportError` with what to do.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("chatanyone")

_lock = threading.Lock()
_core = None
_error: ImportError | None = None


def core():
    """Return the loaded extension module; raise :class:`ImportError` with advice if it is missing."""
    global _core, _error
    if _core is not None:
        return _core
    with _lock:
        if _core is None and _error is None:
            try:
                from . import _core as mod  # type: ignore[attr-defined]
                _core = mod
            except ImportError as exc:
                _error = ImportError(
                    "chatanyone's native extension (chatanyone._core) could not be loaded: "
                    f"{exc}. Reinstall with `pip install .` (or `pip install -e .`) from the source "
                    "tree so that the extension is built; build_info() shows what was built."
                )
                log.error("%s", _error)
        if _core is None:
            raise _error  # type: ignore[misc]
    return _core


def build_info() -> dict:
    """Describe the native build: backends, CUDA version and architectures, compiler, threads.

    Returns a dict; when the extension cannot be loaded, ``{"loaded": False, "error": ...}``.
    Never raises.
    """
    try:
        mod = core()
    except ImportError as exc:
        return {"loaded": False, "error": str(exc)}
    info = dict(mod.build_info())
    info["loaded"] = True
    info.setdefault("threads", os.cpu_count())
    return info
