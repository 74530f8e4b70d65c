"""Audio to motion: the hierarchical motion diffusion model at run time (no PyTorch).

:class:`MotionGenerator` streams 16 kHz speech into per-frame motion (:class:`MotionFrames`);
``layout`` fixes how motion packs into the model's vectors; ``sampler`` is the DDIM loop.
"""
from .generator import MotionGenerator, load_motion_clip
from .layout import MotionFrames

__all__ = ["MotionGenerator", "MotionFrames", "load_motion_clip"]
