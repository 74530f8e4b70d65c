"""chatanyone: real-time talking upper-body video from one portrait and a stream of speech.

Public API: :class:`Avatar`, :class:`Session`, :class:`SessionConfig`, :class:`Frame`,
:class:`AvatarError` (a ``ValueError``: the photo cannot become an avatar), :func:`build_info`,
``__version__``. Importing never fails: the native extension loads on first use.
"""
from ._version import __version__
from ._native import build_info

__all__ = ["Avatar", "AvatarError", "Session", "SessionConfig", "Frame", "build_info", "__version__"]


def __getattr__(name):  # lazy: keeps `import chatanyone` cheap and failure-free
    if name in ("Avatar", "AvatarError"):
        from . import avatar
        return getattr(avatar, name)
    if name in ("Session", "Frame"):
        from . import session
        return getattr(session, name)
    if name == "SessionConfig":
        from .config import SessionConfig
        return SessionConfig
    raise AttributeError(f"module 'chatanyone' has no attribute {name!r}")
