"""Frame sizes of the renderer presets, the one home of these numbers (the session's config, the
geometry renderer, the framing of avatars and corpus crops, and the renderer's networks read them
from here)."""
from __future__ import annotations

PRESET_LONG_SIDE: dict[str, int] = {
    # name: default long side (pixels) of a Session's frames; a frame is the avatar's photo at its
    # own aspect ratio with the animated region pasted back (chatanyone.render.geometry)
    "fast": 512,      # real time on 2 CPU cores
    "quality": 1024,  # the same geometry at twice the size, for GPUs or offline rendering
}

PRESET_SIZES: dict[str, tuple[int, int]] = {
    # name: (width, height) of the neural renderer's upper-body crop (avatar crops, corpus crops,
    # the renderer networks), always 2:3
    "fast": (256, 384),     # real time on 2 CPU cores
    "quality": (512, 768),  # the paper's resolution: the fast networks plus a full-size detail stage
}
