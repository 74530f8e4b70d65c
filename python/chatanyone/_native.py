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
                _core = _load()
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


def _load():
    """The extension module: ``chatanyone._core``, or the build named by ``CHATANYONE_CORE`` (a
    path to a ``_core*.so``; the sanitizer build's tests use it, see CMakePresets.json)."""
    path = os.environ.get("CHATANYONE_CORE")
    if not path:
        from . import _core as mod  # type: ignore[attr-defined]
        return mod
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("chatanyone._core", path)
    if spec is None or not os.path.isfile(path):
        raise ImportError(f"CHATANYONE_CORE={path!r} is not an extension module file")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    sys.modules["chatanyone._core"] = mod
    log.info("native extension loaded from CHATANYONE_CORE=%s", path)
    return mod


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
