"""The motion model's audio front end: 16 kHz samples in, one window's audio tokens out.

Two kinds (``motion_config.json`` ``audio.kind``, :class:`~chatanyone.spec.motion_layout.AudioFrontEndSpec`):

- ``"whisper"`` (shipped): per window, Whisper tiny.en encoder features of one 1.4 s segment, from
  ``C`` frames before the window's prefix to its last heard frame (``audio/whisper.py``). Only the
  raw samples are kept; no log-mel is computed.
- ``"logmel"``: raw log-mel frames (:func:`chatanyone.audio.features.log_mel`, computed as the
  audio streams in, exactly as for the whole clip), :data:`MEL_PER_FRAME` per token, normalized
  with the corpus statistics; a silent lookahead lets the model see silence ahead (calm idle).

Readiness is counted in samples: a motion frame's audio is complete once its own samples are in
(Whisper: each segment's log-mel is computed from the segment alone, so nothing past its end is
read) or, for the log-mel kind, also the next log-mel hop's right context (``HOP``, 10 ms; its
frames are computed as the audio streams in): :attr:`AudioFrontEnd.right_context`, part of
:attr:`MotionGenerator.lookahead_samples`.
"""
from __future__ import annotations

import numpy as np

from ..audio.features import log_mel
from ..spec.motion_layout import MotionSpec
from ..spec.timeline import HOP, MEL_PER_FRAME, N_MELS, PAD, SAMPLES_PER_FRAME, SILENCE_RAW


class AudioFrontEnd:
    """Buffers one stream's audio and turns it into window tokens.

    Args:
        spec: the model's :class:`MotionSpec` (window sizes, audio kind and context).
        stats: the corpus statistics of ``motion_stats.npz`` (``mel_*`` or ``wfeat_*``).
        hop: frames released per window (a Whisper segment ends ``hop + L`` frames into the window).
        threads: CPU threads of the Whisper encoder.

    Not thread-safe: one stream, one caller.
    """

    SILENCE_NATS = 1.0  # mean log-mel above the corpus floor under which a frame counts as silent

    def __init__(self, spec: MotionSpec, stats: dict, *, hop: int, threads: int = 1):
        self.spec = spec
        self.stats = stats
        self.kind = spec.audio.kind
        self.hop = int(hop)
        self.P, self.T, self.L = spec.prefix, spec.window, spec.lookahead
        self.C = spec.audio.context
        # samples past a frame's end its features read: the log-mel STFT's right context (one hop);
        # none for Whisper (each segment's own log-mel, reflect-padded at the segment's end)
        self.right_context = 0 if self.kind == "whisper" else HOP
        if self.kind == "whisper":
            from ..audio.whisper import shared_encoder
            self._wenc = shared_encoder(max(int(threads), 1), spec.audio.compute_type)
        self.reset()

    def reset(self) -> None:
        """Forget all audio (a new stream at frame 0)."""
        self._n_samples = 0                          # samples pushed (and zero-padded by flush)
        # the end of the audio in frames after flush(); None once more audio comes (see eos)
        self._eos: int | None = None
        self._hops_done = 0                          # log-mel hops whose audio (+ right context) is in
        self._mode = None                            # "audio" or "features"
        # log-mel kind: samples from (hops_done*160 - 120) (zeros before 0) and raw log-mel from _mel0
        self._pcm = np.zeros(PAD, np.float32)
        self._mel = np.zeros((0, N_MELS), np.float32)
        self._mel0 = 0
        # whisper kind: raw samples from _wav0
        self._wav = np.zeros(0, np.float32)
        self._wav0 = 0

    @property
    def eos(self) -> int | None:
        """Where the pushed audio ends, in frames, after :meth:`flush` (the audio past it is
        silence: no window waits for lookahead beyond it); None while more audio may come. Set by
        :meth:`flush` only, cleared by the next audio pushed (a non-empty push) and by
        :meth:`reset`. This is the motion stage's one record of an end: the scheduler and the
        generator read it here. It is not an utterance end (the Session owns those, and flushes
        the generator also where it fills a real-time underrun with silence)."""
        return self._eos

    # ------------------------------------------------------------------------------------- input
    def push_audio(self, a: np.ndarray) -> None:
        """Append ``[S]`` float32 16 kHz samples (empty: no change). Raises ValueError for
        non-finite samples or a stream that was fed features."""
        if self._mode == "features":
            raise ValueError("push_audio: this stream was fed features; call reset() first")
        self._mode = "audio"
        if a.size == 0:
            return
        if not np.all(np.isfinite(a)):
            raise ValueError("push_audio: samples contain NaN or infinite values")
        self._eos = None
        self._n_samples += a.size
        if self.kind == "whisper":
            self._wav = np.concatenate([self._wav, a])
            self._hops_done = max(self._hops_done, self._n_samples // HOP)  # no right context
        else:
            self._pcm = np.concatenate([self._pcm, a])
            # mel frame i needs samples up to i*160+280; compute one extra hop and drop it (exactness)
            self._compute_mel(self._n_samples // HOP - 1, final=False)

    def push_features(self, m: np.ndarray) -> None:
        """Append raw log-mel frames ``[n, 80]`` (log-mel kind only)."""
        if m.ndim != 2 or m.shape[1] != N_MELS:
            raise ValueError(f"push_audio_features: mel must be [n, {N_MELS}], got {m.shape}")
        if self._mode == "audio":
            raise ValueError("push_audio_features: this stream was fed audio; call reset() first")
        if self.kind == "whisper":
            raise ValueError("push_audio_features: this model reads Whisper features of the audio; "
                             "push_audio() the 16 kHz samples instead")
        self._mode = "features"
        if m.shape[0]:
            self._eos = None
        self._mel = np.concatenate([self._mel, m])
        self._hops_done += m.shape[0]

    def push_silence(self, n_frames: int) -> None:
        """Append ``n_frames`` motion frames of silence."""
        if self._mode == "features":
            self.push_features(np.full((n_frames * MEL_PER_FRAME, N_MELS), SILENCE_RAW, np.float32))
        else:
            self.push_audio(np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32))

    def flush(self) -> int:
        """The audio pushed so far ends here: pad it to a whole frame and set :attr:`eos`, the
        number of frames of audio (returned)."""
        if self._mode == "features":
            n_frames = -(-self._hops_done // MEL_PER_FRAME)
            pad = n_frames * MEL_PER_FRAME - self._hops_done
            if pad:
                self._mel = np.concatenate([self._mel, np.full((pad, N_MELS), SILENCE_RAW, np.float32)])
                self._hops_done += pad
            self._eos = n_frames
            return n_frames
        rem = (-self._n_samples) % SAMPLES_PER_FRAME
        if rem:
            if self.kind == "whisper":
                self._wav = np.concatenate([self._wav, np.zeros(rem, np.float32)])
            else:
                self._pcm = np.concatenate([self._pcm, np.zeros(rem, np.float32)])
            self._n_samples += rem
        if self.kind == "whisper":
            self._hops_done = max(self._hops_done, self._n_samples // HOP)
        else:
            self._compute_mel(self._n_samples // HOP, final=True)
        self._eos = self._n_samples // SAMPLES_PER_FRAME
        return self._eos

    def _compute_mel(self, n_ready: int, final: bool) -> None:
        i0 = self._hops_done
        if n_ready <= i0:
            return
        # _pcm[0] is sample i0*160 - 120
        if final:
            seg = self._pcm[PAD:PAD + (n_ready - i0) * HOP]
            m = log_mel(seg, left_context=self._pcm[:PAD])
        else:
            seg = self._pcm[PAD:PAD + (n_ready - i0 + 1) * HOP]
            m = log_mel(seg, left_context=self._pcm[:PAD])[:-1]
        self._mel = np.concatenate([self._mel, m])
        self._hops_done = n_ready
        self._pcm = self._pcm[(n_ready - i0) * HOP:]  # keep 120 samples of left context + the rest

    # ------------------------------------------------------------------------------------ output
    @property
    def frames_ready(self) -> int:
        """Motion frames whose audio is complete."""
        return self._hops_done // MEL_PER_FRAME

    def known_positions(self, w0: int, n_out: int) -> int:
        """How many of the window's ``P + T + L`` token positions carry audio the model may trust
        (the rest are null tokens, "not heard yet")."""
        if self.kind == "whisper":  # features exist for the heard positions only (as trained)
            return self.P + self.hop + self.L
        eos = self._eos
        if (eos is not None and eos <= w0 + n_out + self.L) or \
                self._lookahead_silent(w0 + n_out, w0 + n_out + self.L):
            return self.spec.tokens  # the utterance ended there, or silence ahead: more silence
        return self.P + n_out + self.L

    def tokens(self, w0: int, n_out: int) -> np.ndarray:
        """``[1, P+T+L, D]`` float32 normalized audio tokens of the window starting at frame ``w0``
        that releases ``n_out`` frames; audio past :attr:`eos` is silence."""
        if self.kind == "whisper":
            return self._whisper_tokens(w0)
        return self._logmel_tokens(w0, w0 + n_out + self.L)

    def _lookahead_silent(self, f0: int, f1: int) -> bool:
        """Whether motion frames ``[f0, f1)`` (the window's lookahead) are all silent."""
        lo, hi = f0 * MEL_PER_FRAME - self._mel0, f1 * MEL_PER_FRAME - self._mel0
        m = self._mel[max(lo, 0):max(hi, 0)]
        if m.shape[0] < hi - lo:
            return False
        e = (np.maximum(m, self.stats["mel_floor"]) - self.stats["mel_floor"]).mean(1)
        return bool(np.all(e < self.SILENCE_NATS))

    def _logmel_tokens(self, w0: int, upto: int) -> np.ndarray:
        s = self.stats
        N = self.spec.tokens
        lo, hi = (w0 - self.P) * MEL_PER_FRAME, (w0 + self.T + self.L) * MEL_PER_FRAME
        raw = np.full((hi - lo, N_MELS), SILENCE_RAW, np.float32)
        a, b = max(lo, self._mel0), min(hi, self._mel0 + self._mel.shape[0], upto * MEL_PER_FRAME)
        if self._eos is not None:
            b = min(b, self._eos * MEL_PER_FRAME)
        if b > a:
            raw[a - lo:b - lo] = self._mel[a - self._mel0:b - self._mel0]
        norm = (np.maximum(raw, s["mel_floor"]) - s["mel_mean"]) / s["mel_std"]
        return norm.reshape(1, N, MEL_PER_FRAME * N_MELS).astype(np.float32)

    def _whisper_tokens(self, w0: int) -> np.ndarray:
        """Normalized Whisper features of the segment from ``C`` frames before the prefix to the
        window's last heard frame (``hop + L`` frames in); zeros past it (not heard: the model
        reads null tokens there). Samples before 0 or after the flushed end are silence."""
        from ..audio.whisper import FEAT_DIM, segment_features
        N = self.spec.tokens
        n_tok = self.P + self.hop + self.L
        seg = self.samples(w0 - self.P - self.C, w0 + self.hop + self.L)
        feat = segment_features(self._wenc, seg, n_tok)
        out = np.zeros((1, N, FEAT_DIM), np.float32)
        out[0, :n_tok] = (feat - self.stats["wfeat_mean"]) / self.stats["wfeat_std"]
        return out

    def segment_features(self, ends, seg: int, n_tokens: int) -> np.ndarray:
        """Raw Whisper features of the segments of ``seg`` frames ending at each frame of ``ends``
        (exclusive; samples as :meth:`samples` gives them), encoded in one batched encoder call:
        ``[len(ends), n_tokens, 768]`` float32, the last ``n_tokens`` frames of each segment
        (Whisper kind only). Blocks for the encoder (about 5 ms per 0.96 s segment on one core,
        less per segment in a batch)."""
        from ..audio.whisper import segment_features_batch
        if self.kind != "whisper":
            raise ValueError("segment_features: this front end reads log-mel, not Whisper features")
        ends = [int(e) for e in ends]
        if not ends:
            raise ValueError("segment_features: no segments asked for")
        segs = np.stack([self.samples(e - seg, e) for e in ends])
        return segment_features_batch(self._wenc, segs, n_tokens)

    def samples(self, f_lo: int, f_hi: int) -> np.ndarray:
        """``[(f_hi - f_lo) * 640]`` float32 raw samples of frames ``[f_lo, f_hi)`` (Whisper kind):
        zeros before 0, after the flushed end :attr:`eos` and where nothing was pushed yet."""
        s_lo = f_lo * SAMPLES_PER_FRAME
        seg = np.zeros((f_hi - f_lo) * SAMPLES_PER_FRAME, np.float32)
        a = max(s_lo, self._wav0)
        b = min(f_hi * SAMPLES_PER_FRAME, self._wav0 + self._wav.size)
        if self._eos is not None:
            b = min(b, self._eos * SAMPLES_PER_FRAME)
        if b > a:
            seg[a - s_lo:b - s_lo] = self._wav[a - self._wav0:b - self._wav0]
        return seg

    def trim(self, next_frame: int, back: int | None = None) -> None:
        """Drop audio no window from ``next_frame`` on needs (``back``: frames before it still
        needed; default the window's prefix and context)."""
        if self.kind == "whisper":
            keep = max((next_frame - (self.P + self.C if back is None else back)) * SAMPLES_PER_FRAME, 0)
            if keep > self._wav0:
                self._wav = self._wav[keep - self._wav0:]
                self._wav0 = keep
            return
        keep_from = max((next_frame - self.P) * MEL_PER_FRAME, 0)
        drop = keep_from - self._mel0
        if drop > 0:
            self._mel = self._mel[drop:]
            self._mel0 = keep_from
