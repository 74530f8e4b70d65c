"""Skip marks shared by the tests that run a shipped model on Whisper features."""
from __future__ import annotations

import pytest

from chatanyone.runners.base import weights_path


def whisper_ok() -> bool:
    """Whether the bundled Whisper encoder can be found."""
    try:
        from chatanyone.audio.whisper import model_dir
        model_dir()
        return True
    except Exception:
        return False


def needs_shipped(name: str, what: str):
    """A skip mark for tests that need the shipped weights ``name`` (``what`` names them in the
    reason) and the Whisper encoder."""
    return pytest.mark.skipif(not (weights_path(name).is_file() and whisper_ok()),
                              reason=f"no shipped {what} or no Whisper encoder")
