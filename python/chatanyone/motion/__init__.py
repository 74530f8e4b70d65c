"""Audio to motion: the hierarchical motion diffusion model at run time (no PyTorch).

Layer: run time. May import ``spec``, ``audio``, ``runners``, ``ops`` (through ``sampler``); never
``data``, ``train`` or ``eval``.

:class:`MotionGenerator` streams 16 kHz speech into per-frame motion (:class:`MotionFrames`, from
``chatanyone.spec.motion_layout``). Inside: ``frontend`` (audio -> window tokens), ``scheduler``
(which window, what it releases, joins), ``window`` (sampling one window, a pure function),
``sampler`` (the DDIM schedule and loop).
"""
from ..spec.motion_layout import MotionFrames
from .generator import MotionGenerator, load_motion_clip

__all__ = ["MotionGenerator", "MotionFrames", "load_motion_clip"]
