"""Offline: real video in, the training corpus out (``chatanyone prepare-data``).

Layer: offline. Nothing on the run-time path (Avatar, Session, CLI render/demo) imports this
package; it may import the run-time layers (``spec``, ``vision``, ``audio``).

Modules: :mod:`.video` (PyAV decoding at a fixed fps, 16 kHz mono audio on the clip's timeline),
:mod:`.smoothing` (zero-phase One-Euro of landmark tracks), :mod:`.motion_features` (head pose,
expression, eyes, body, hands of a clip; basis fitting), :mod:`.corpus` (``prepare-data``),
:mod:`.draw` (debug drawings for ``chatanyone inspect``). Heavy dependencies (the landmark
detector, cv2, av) load only when used.
"""
from __future__ import annotations

__all__ = ["default_avatar_image", "default_avatar_path"]


def __getattr__(name):  # older callers: the default portrait now lives in chatanyone.assets
    if name in __all__:
        from .. import assets
        return getattr(assets, name)
    raise AttributeError(f"module 'chatanyone.data' has no attribute {name!r}")
