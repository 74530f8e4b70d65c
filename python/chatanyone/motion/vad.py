"""Speech activity for the mouth's rest gate: is somebody speaking around this frame?

Real pauses are not digital silence: room noise, hum and breaths sit 20-50 dB above it, and the
mouth predictor, fed them, keeps moving the lips. :class:`SpeechGate` tells speech from such pauses
by the frame's level *relative to the stream's own running speech level* and to its running noise
floor, so it works for a loud close microphone and a quiet distant one alike:

- ``level`` (dBFS): the RMS level of each 40 ms frame;
- the speech level ``S``: a peak tracker, rising fast to loud frames (``attack``), falling slowly
  (``decay_db`` per frame) through pauses;
- the noise floor ``N``: a minimum tracker, falling at once to quiet frames, rising slowly
  (``rise_db`` per frame) through speech;
- a frame's activity: 0 below ``max(S + rel_db, min(N + snr_db, S + cap_db), floor_db)``, 1
  ``width_db`` above it, linear in dB between (``cap_db`` keeps a noise floor that has not seen a
  quiet frame yet, at a stream that starts with speech, from silencing the speech);
- the weight of frame ``t``: the largest activity from ``hold + release`` frames before it to
  ``onset`` (at most ``look``) after it, each tapered by its distance (1 up to ``hold`` frames
  behind, then linearly to 0 over ``release`` more; linearly to 0 at ``onset + 1`` ahead), so the
  mouth opens over the frames before a word and closes over the frames after the last one: no
  snapping. A gap of at most ``bridge`` frames with speech on both sides (seen within the lookahead)
  keeps full weight: the mouth keeps going between words, yet rests right after the last word of a
  phrase. The generator's default (``hold`` 2, ``release`` 3, ``onset`` 3, no bridge) moves the
  mouth five frames into every pause and three before its end, most of what moves in pauses;
  ``hold`` 0, ``release`` 2, ``onset`` 2, ``bridge`` 4 (``MotionGenerator.FAST_REST_GATE``) keeps it
  still from the third frame after a phrase to the third before the next, at a small cost in mouth
  r (motion/design.md, session 7).

Where the weight is 0 the mouth is still, half way between the average speaking shape and the
closed mouth (the generator's ``PAUSE_CLOSE``): real speakers' lips stay about as open in pauses as
on average in speech (training clips: +0.06 speech stds; some speakers close them), and a
closed-mouth rest would make every pause a close-and-reopen. Only in (near) digital silence
(nothing is being said and nobody is in the room: a Session's idle feed) does the mouth close all
the way, slowly: :attr:`SpeechGate.settle` goes from 0 to 1 with ``settle_frames`` as time constant.

It is causal up to the predictor's own lookahead: frame ``t`` reads levels up to ``t + look``, and
the trackers hold frames up to ``t``. Stateful (the trackers); one stream, frames in order, so the
result does not depend on how the audio was chunked. Pure numpy, microseconds per frame.
"""
from __future__ import annotations

import numpy as np

from ..spec.timeline import SAMPLES_PER_FRAME


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """``[n]`` float64 RMS level in dBFS of each 640-sample frame of ``samples [n * 640]``
    (digital silence: -200)."""
    x = np.asarray(samples, np.float64).reshape(-1, SAMPLES_PER_FRAME)
    return 10.0 * np.log10(np.mean(x * x, 1) + 1e-20)


class SpeechGate:
    """Per-frame speech activity in [0, 1] from frame levels (see the module docstring).

    Args:
        look: frames of lookahead the caller can give (the mouth predictor's).
        hold: frames after speech during which the mouth keeps going.
        release: frames over which it then comes to rest.
        onset: frames before speech over which the mouth starts moving, 0..``look`` (default ``look``).
        bridge: gaps between words of up to this many frames keep full weight (0: none).
        rel_db: activity starts this far below the running speech level.
        snr_db: ... and this far above the running noise floor,
        cap_db: ... but never more than this relative to the speech level for the noise term.
        floor_db: ... and never below this absolute level (digital silence, a muted microphone).
        silence_db: below this level a frame is (near) digital silence, where the mouth closes.
        width_db: dB from no activity to full activity.
        attack: fraction of the way the speech level moves to a louder frame.
        decay_db, rise_db: dB per frame the speech level falls and the noise floor rises.
        init_db: the speech level before any speech (a quiet talker; a louder one lifts it within
            a few frames).
        settle_frames: time constant (frames) of the slow close in a pause (:attr:`settle`).
        unsettle_rate: fraction of the way back to the speaking shape per frame of speech.
        init_settle: :attr:`settle` at a stream's start (0: the pause shape; a Session's idle
            feed of digital silence closes the mouth within a second).
        pause_settle_frames: time constant (frames) of the close in a real pause (0: none, the
            mouth keeps its pause shape there).
        noise_skips_silence: (near) digital silence (below ``silence_db``) leaves the noise floor
            as it is (True), instead of pulling it down to its level, after which it rises back
            ``rise_db`` per frame (False, the default).

    Not thread-safe; frames must be given in order (:meth:`step`).
    """

    def __init__(self, look: int, *, hold: int = 2, release: int = 3, onset: int | None = None, bridge: int = 0,
                 rel_db: float = -25.0, snr_db: float = 5.0, cap_db: float = -12.0,
                 floor_db: float = -62.0, silence_db: float = -80.0, width_db: float = 6.0, attack: float = 0.3,
                 decay_db: float = 0.05, rise_db: float = 0.02, init_db: float = -35.0,
                 settle_frames: float = 6.0, unsettle_rate: float = 0.3, init_settle: float = 0.0,
                 pause_settle_frames: float = 0.0, noise_skips_silence: bool = False):
        onset = look if onset is None else onset
        if look < 0 or hold < 0 or release < 0 or bridge < 0 or not 0 <= onset <= look:
            raise ValueError(f"SpeechGate: look, hold, release and bridge must be >= 0 and onset in [0, look], "
                             f"got look={look}, hold={hold}, release={release}, bridge={bridge}, onset={onset}")
        if not width_db > 0:
            raise ValueError(f"SpeechGate: width_db must be > 0, got {width_db}")
        self.look, self.hold, self.release, self.onset = int(look), int(hold), int(release), int(onset)
        self.bridge = int(bridge)
        self.back = max(self.hold + self.release, self.bridge)  # frames before t the weight reads
        self.rel_db, self.snr_db, self.floor_db, self.width_db = rel_db, snr_db, floor_db, width_db
        self.silence_db, self.cap_db = silence_db, cap_db
        self.attack, self.decay_db, self.rise_db, self.init_db = attack, decay_db, rise_db, init_db
        self.settle_frames, self.unsettle_rate = float(settle_frames), float(unsettle_rate)
        self.init_settle = float(init_settle)
        self.pause_settle_frames = float(pause_settle_frames)
        self.noise_skips_silence = bool(noise_skips_silence)
        k = np.arange(-self.back, self.look + 1, dtype=np.float64)
        behind = np.clip(1.0 - (-k - self.hold) / (self.release + 1), 0.0, 1.0)
        self.taper = np.where(k <= 0, behind, np.clip(1.0 - k / (self.onset + 1), 0.0, 1.0))
        self.reset()

    def reset(self) -> None:
        """A new stream: no speech heard yet."""
        self.speech_db = float(self.init_db)
        self.noise_db: float | None = None
        self._settle = float(self.init_settle)

    def _fold(self, db: float) -> None:
        if db > self.speech_db:
            self.speech_db += self.attack * (db - self.speech_db)
        else:
            self.speech_db -= self.decay_db
        if self.noise_skips_silence and db < self.silence_db:
            return  # digital silence (a decoder's priming samples, a Session's idle feed) is not the room's noise
        if self.noise_db is None or db < self.noise_db:
            self.noise_db = db
        else:
            self.noise_db += self.rise_db

    def threshold(self) -> float:
        """The level (dBFS) at which activity starts, now."""
        noise = self.floor_db if self.noise_db is None else min(self.noise_db + self.snr_db,
                                                                self.speech_db + self.cap_db)
        return max(self.speech_db + self.rel_db, noise, self.floor_db)

    def step(self, levels: np.ndarray) -> float:
        """Frame ``t``'s weight from ``levels [back + 1 + look]``: the dBFS levels of frames
        ``t - back .. t + look`` (``back = hold + release``) (frames before the stream: -200). Folds frame ``t``'s level into
        the trackers, so call it once per frame, in order."""
        lv = np.asarray(levels, np.float64)
        if lv.shape != self.taper.shape:
            raise ValueError(f"SpeechGate.step: expected {self.taper.size} levels, got {lv.shape}")
        self._fold(float(lv[self.back]))
        act = np.clip((lv - self.threshold()) / self.width_db, 0.0, 1.0)
        w = float(np.max(act * self.taper))
        if self.bridge and w < 1.0:  # a gap between words (speech within ``bridge`` frames on both sides)
            b = self.back
            for i in range(0, min(b, self.bridge) + 1):
                for j in range(1, min(self.look, self.bridge + 1 - i) + 1):
                    w = max(w, min(float(act[b - i]), float(act[b + j])))
        if w > 0:  # speech: back to the pause shape within a few frames
            self._settle *= 1.0 - min(1.0, self.unsettle_rate) * w
        elif lv.max() < self.silence_db:  # (near) digital silence: slowly to the closed mouth
            self._settle += (1.0 - self._settle) / max(self.settle_frames, 1.0)
        elif self.pause_settle_frames > 0:  # a real pause: (more) slowly to the closed mouth too
            self._settle += (1.0 - self._settle) / max(self.pause_settle_frames, 1.0)
        # a real pause keeps the shape it has (a codec's comfort noise flickering about the silence
        # level must not open and close the mouth)
        return w

    @property
    def settle(self) -> float:
        """How far the resting mouth has gone from its pause shape to the closed mouth,
        0..1, after the last :meth:`step`: it moves ``1/settle_frames`` of the way to 1 per frame
        of (near) digital silence (every level read below ``silence_db``), back towards 0 by
        ``unsettle_rate`` (times the weight) per frame of speech, and stays in a real pause;
        ``init_settle`` at a stream's start. Continuous, so the resting shape never jumps."""
        return float(self._settle)

    def weights(self, levels: np.ndarray, with_settle: bool = False):
        """``[n]`` weights of a whole stream of frame levels ``[n]`` (offline: frames past the end
        count as silence), from a fresh state; with ``with_settle`` also ``[n]`` :attr:`settle`."""
        lv = np.asarray(levels, np.float64)
        pad = np.concatenate([np.full(self.back, -200.0), lv, np.full(self.look, -200.0)])
        self.reset()
        w = self.taper.size
        out = np.zeros((2, lv.size), np.float32)
        for t in range(lv.size):
            out[0, t] = self.step(pad[t:t + w])
            out[1, t] = self.settle
        return (out[0], out[1]) if with_settle else out[0]
