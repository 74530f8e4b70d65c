"""The timeline every part shares: sample rate, frame rate and the audio feature grid.

One home for these numbers: the session's clock, the motion model's windows, the log-mel front
end, Whisper segments, the corpus and training all read them from here.

- Audio runs at :data:`SAMPLE_RATE` (16 kHz mono float32 in [-1, 1]) inside the package.
- Motion runs at :data:`MOTION_FPS` (25 fps): motion frame ``t`` owns the samples
  ``[t * SAMPLES_PER_FRAME, (t + 1) * SAMPLES_PER_FRAME)``.
- Log-mel frames are ``HOP`` samples apart (100 Hz), :data:`MEL_PER_FRAME` per motion frame.

What a caller may feed (input sample rates, dtypes) is checked in :mod:`chatanyone.inputs`.
"""
from __future__ import annotations

SAMPLE_RATE = 16000                          # Hz, everything inside runs at this rate
MOTION_FPS = 25                              # motion frames per second
SAMPLES_PER_FRAME = SAMPLE_RATE // MOTION_FPS  # 640 samples per motion frame
HOP = 160                                    # samples per log-mel frame (10 ms)
WIN = 400                                    # log-mel analysis window (25 ms)
N_FFT = 512
N_MELS = 80
PAD = (WIN - HOP) // 2                       # 120: log-mel context on each side of a hop
MEL_PER_FRAME = SAMPLES_PER_FRAME // HOP     # 4 log-mel frames per motion frame
SILENCE_RAW = -20.0                          # raw log-mel of padding (clamped up to the corpus floor)
