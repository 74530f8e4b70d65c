"""Audio input: resampling to 16 kHz mono (:mod:`.resample`, the one resampler of run time and
corpus), the log-mel features (:mod:`.features`) and Whisper tiny.en segment features
(:mod:`.whisper`) the motion model listens to.

Layer 2 (run time): may import ``spec`` and ``inputs``; never ``vision``, ``runners``, ``motion``,
``render`` or offline code (docs/design.md, "Layers")."""
from .features import SAMPLE_RATE, HOP, N_MELS, log_mel, to_mono_16k

__all__ = ["SAMPLE_RATE", "HOP", "N_MELS", "log_mel", "to_mono_16k"]
