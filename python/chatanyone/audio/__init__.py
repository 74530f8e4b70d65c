"""Audio input: resampling to 16 kHz mono and the log-mel features the motion model listens to."""
from .features import SAMPLE_RATE, HOP, N_MELS, log_mel, to_mono_16k

__all__ = ["SAMPLE_RATE", "HOP", "N_MELS", "log_mel", "to_mono_16k"]
