"""The deterministic mouth: Whisper features of the audio heard so far -> lip and jaw expression.

Lips follow phonemes; sampling them (the face diffusion model) costs lip sync for variety nobody
wants there. :class:`MouthPredictor` maps the Whisper tiny.en tokens of a frame's neighbourhood
(``past`` frames before it up to ``look`` frames after it, all from one streamed segment) to the
expression coefficients with a ridge regression or a small MLP on PCA-reduced tokens
(``kind="ridge"``, or ``kind="mlp"``: e.g. the ridge averaged with an MLP stored as one MLP whose
linear skip path carries the ridge, as ``weights/motion_mouth.npz`` is since session 8), optionally
with a viseme head's log-posteriors as extra inputs and the output smoothed over frames
(:meth:`MouthPredictor.smooth_frames`), trained by ``chatanyone.train.mouth`` on
speaker-normalized targets. :func:`mouth_projector` says
which part of the expression is "mouth": the coefficients' effect on the mesh points below the nose.
The generator keeps the diffusion model's expression elsewhere (brows, eyes, cheeks) and its head,
eyes and body. No PyTorch; a few 100-kB matrices.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from .mlp import mlp_forward

log = logging.getLogger("chatanyone")


class MouthPredictor:
    """The mouth predictor of ``motion_mouth.npz``: a ridge regression or a small MLP on
    PCA-reduced Whisper tokens (and, where the file carries a viseme head, ``ph_*``, the viseme
    log-posteriors of the same tokens: :func:`phone_columns`), with an amplitude gain about its
    mean output.

    Attributes:
        look: frames of lookahead the predictor reads after a frame (each frame's tokens come from
            a segment that ends ``look`` frames after it, or up to ``hop - 1`` frames later).
        past: frames before it it reads.
        hop: frames released per segment (one weight set, or one input flag, per place).
        seg: segment length in frames.
        gain: amplitude gain of the mouth opening (regression shrinks towards the mean; this undoes
            it for the opening, the component the audio predicts best).
        open_dir: ``[E]`` the expression a gain adds per unit of opening (``open_dir @ open_vec``
            is 1): the file's ``open_dir``, the real speakers' average lower-face change with the
            opening (jaw, chin and both lips together, :func:`opening_direction`); without it, the
            smallest change that opens the inner lips (``open_vec / |open_vec|^2``: it moves the
            inner lip contours alone, so a gained mouth opened by thinning its lips).
        ref_amp: the training corpus's median mouth-opening spread, the predictor's amplitude.
        A: ``[E, E]`` the lower-face projector (:func:`mouth_projector`).
        rest: ``[E]`` the prediction for a segment of digital silence (the closed mouth at rest).
        smooth: the output's smoothing over frames (:meth:`smooth_frames`, :func:`ema`; 0: none). A
            smoothed predictor is trained to run ``lead`` frames ahead of the real mouth (the
            file's ``lead``, informative), which the smoothing's delay takes back.
    """

    def __init__(self, path: str | Path):
        """Load ``path`` (``motion_mouth.npz``). Raises FileNotFoundError when it is absent and
        ValueError when it is not a mouth predictor (not an npz, arrays missing or of the wrong
        shapes)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no mouth predictor at {path}")
        try:
            self._load(path)
        except ValueError as e:
            if str(path) in str(e):  # our own message
                raise
            raise ValueError(f"{path}: not a usable mouth predictor ({e})") from e
        except (KeyError, OSError, EOFError, zipfile.BadZipFile, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{path}: not a usable mouth predictor ({type(e).__name__}: {e})") from e
        for name, a in (("mean", self.mean), ("std", self.std), ("open_vec", self.open_vec), ("rest", self.rest),
                        ("open_dir", self.open_dir)):
            if a.ndim != 1 or not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: {name} must be a finite vector, got shape {a.shape}")
        E = self.n_exp
        if self.pca.shape[0] != self.mean.shape[0] or self.open_vec.shape != (E,) or self.rest.shape != (E,) \
                or self.A.shape != (E, E) or self.open_dir.shape != (E,):
            raise ValueError(f"{path}: pca {self.pca.shape}, open_vec {self.open_vec.shape}, rest {self.rest.shape}, "
                             f"A {self.A.shape}, open_dir {self.open_dir.shape} do not fit {self.mean.shape[0]} "
                             f"features and {E} coefficients")
        if abs(float(self.open_dir @ self.open_vec) - 1.0) > 1e-3:
            raise ValueError(f"{path}: open_dir must open the mouth by 1 per unit (open_dir @ open_vec = 1), "
                             f"got {float(self.open_dir @ self.open_vec):.4f}")

    def _load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            self.kind = str(z["kind"]) if "kind" in z.files else "ridge"
            self.mean = z["mean"].astype(np.float32)
            self.std = z["std"].astype(np.float32)
            self.pca = z["pca"].astype(np.float32)          # [768, d]
            self.look, self.past = int(z["look"]), int(z["past"])
            self.hop, self.seg = int(z["hop"]), int(z["seg"])
            self.ref_amp = float(z["ref_amp"])
            self.open_vec = z["open_vec"].astype(np.float32)
            self.A = z["A"].astype(np.float32)
            self.gain = float(z["gain"])
            self.rest = z["rest"].astype(np.float32)        # [E] the prediction for a silent segment
            # optional (session 11): the direction along which a gain opens the mouth
            self.open_dir = (z["open_dir"].astype(np.float32) if "open_dir" in z.files
                             else min_open_dir(self.open_vec))
            # optional (session 8): the output smoothed over frames, y_s[t] = (1 - a) y[t] + a y_s[t - 1]
            # (the predictor was trained to lead the real mouth by about the delay this adds)
            self.smooth = float(z["smooth"]) if "smooth" in z.files else 0.0
            if not 0.0 <= self.smooth < 1.0:
                raise ValueError(f"{path}: smooth must be in [0, 1), got {self.smooth}")
            k = (self.past + self.look + 1) * self.pca.shape[1]
            # optional: viseme posteriors of the same tokens as extra inputs (motion/phones.py)
            self.phones = None
            if "ph_n_layers" in z.files:
                from .phones import VisemeHead
                self.phones = VisemeHead(path, arrays=z, prefix="ph_")
                self.ph_cm, self.ph_cs = z["ph_cm"].astype(np.float32), z["ph_cs"].astype(np.float32)
                k += (self.past + self.look + 1) * self.phones.n_classes
                if self.ph_cm.shape != (k - (self.past + self.look + 1) * self.pca.shape[1],):
                    raise ValueError(f"{path}: phone column statistics are {self.ph_cm.shape}")
            if self.kind == "ridge":
                self.W = z["W"].astype(np.float32)          # [hop, k, E]
                self.b = z["b"].astype(np.float32)          # [hop, E]
                if self.W.shape[:2] != (self.hop, k) or self.b.shape[0] != self.hop:
                    raise ValueError(f"{path}: W is {self.W.shape}, expected [{self.hop}, {k}, E]")
                self.n_exp = self.W.shape[2]
            elif self.kind == "mlp":
                self.layers = [(z[f"mlp_W{i}"].astype(np.float32), z[f"mlp_b{i}"].astype(np.float32))
                               for i in range(int(z["n_layers"]))]
                self.ymean = z["ymean"].astype(np.float32)
                # an optional linear path beside the hidden layers (the MLP corrects a ridge-like map)
                self.skip = ((z["skip_W"].astype(np.float32), z["skip_b"].astype(np.float32))
                             if "skip_W" in z.files else None)
                if self.layers[0][0].shape[0] != k + self.hop:
                    raise ValueError(f"{path}: first layer takes {self.layers[0][0].shape[0]} inputs, expected {k + self.hop}")
                for (W0, _), (W1, b1) in zip(self.layers, self.layers[1:]):
                    if W1.shape[0] != W0.shape[1] or b1.shape != (W1.shape[1],):
                        raise ValueError(f"{path}: MLP layers do not chain ({W0.shape} then {W1.shape}, {b1.shape})")
                self.n_exp = self.layers[-1][0].shape[1]
                if self.skip is not None and (self.skip[0].shape != (k + self.hop, self.n_exp)
                                              or self.skip[1].shape != (self.n_exp,)):
                    raise ValueError(f"{path}: skip_W is {self.skip[0].shape}, expected {(k + self.hop, self.n_exp)}")
            else:
                raise ValueError(f"{path}: unknown mouth predictor kind {self.kind!r}")

    @property
    def center(self) -> np.ndarray:
        """``[E]``: the predictor's mean output (the average speaking mouth of the median speaker);
        the gain and a style reference scale the motion about it, and in pauses the mouth rests
        there (``vad.py``)."""
        return (self.b.mean(0) if self.kind == "ridge" else self.ymean).astype(np.float32)

    @property
    def n_tokens(self) -> int:
        return self.past + self.look + 1

    def predict(self, tokens: np.ndarray, extra) -> np.ndarray:
        """``tokens [n, past + look + 1, 768]`` raw Whisper features (frame ``t - past`` .. ``t + look``
        for each of ``n`` frames), ``extra [n]`` (or one int): how many frames after ``t + look`` their
        segment ends (0 .. hop - 1) -> ``[n, E]`` expression coefficients (speaker-normalized
        amplitude). Pure numpy, well under a millisecond for a chunk."""
        t = np.asarray(tokens, np.float32)
        if t.ndim != 3 or t.shape[1:] != (self.n_tokens, self.mean.shape[0]):
            raise ValueError(f"MouthPredictor.predict: tokens must be [n, {self.n_tokens}, {self.mean.shape[0]}], got {t.shape}")
        ex = np.broadcast_to(np.asarray(extra, np.int64), (t.shape[0],))
        if ex.size and (ex.min() < 0 or ex.max() >= self.hop):
            raise ValueError(f"MouthPredictor.predict: extra must be in [0, {self.hop}), got {ex}")
        z = (((t - self.mean) / self.std) @ self.pca).reshape(t.shape[0], -1)
        if self.phones is not None:
            z = np.concatenate([z, phone_columns(self.phones.posteriors(t), self.ph_cm, self.ph_cs)], 1)
        if self.kind == "ridge":
            center = self.b[ex]
            y = center + np.einsum("nk,nke->ne", z, self.W[ex])
        else:
            center = self.ymean
            h = np.concatenate([z, np.eye(self.hop, dtype=np.float32)[ex]], 1)
            y = mlp_forward(self.layers, h)
            if self.skip is not None:
                y = y + h @ self.skip[0] + self.skip[1]
        # the gain scales the mouth opening only (the output's opening along open_vec), adding open_dir
        return open_gain(y, center, self.gain, self.open_vec, self.open_dir)

    def smooth_frames(self, y: np.ndarray, state=None) -> tuple[np.ndarray, np.ndarray | None]:
        """The predictor's output smoothing on consecutive frames ``y [n, E]`` (:func:`ema`, weight
        :attr:`smooth`; the identity when it is 0). ``state``: what the previous call returned
        (``None``: the stream's first frames). Returns the smoothed ``[n, E]`` and the new state. A
        stream must pass its frames in order, each once; then the result does not depend on how
        they are cut into calls."""
        if self.smooth <= 0.0:
            return np.asarray(y, np.float32), state
        return ema(y, self.smooth, state)

    def predict_segment(self, feats: np.ndarray, n_frames: int) -> np.ndarray:
        """The ``n_frames`` (<= hop) frames released from one segment: ``feats [N, 768]`` are its
        last ``N >= past + look + n_frames`` tokens; the frames are ``N - look - n_frames .. N - look - 1``
        of them. Returns ``[n_frames, E]``."""
        f = np.asarray(feats, np.float32)
        k = self.n_tokens
        N = f.shape[0]
        if not 1 <= n_frames <= self.hop or N < k + n_frames - 1:
            raise ValueError(f"predict_segment: {n_frames} frames (hop {self.hop}) from {N} tokens")
        idx = np.arange(N - self.look - n_frames, N - self.look)[:, None] + np.arange(-self.past, self.look + 1)[None]
        return self.predict(f[idx], np.arange(n_frames)[::-1])


def min_open_dir(open_vec: np.ndarray) -> np.ndarray:
    """``[E]``: the smallest expression change that opens the inner lips by 1, ``open_vec / |open_vec|^2``
    (the basis is orthonormal: it moves the inner lip contours alone; the gains' direction before
    session 11, kept for ablations)."""
    ov = np.asarray(open_vec, np.float32)
    return (ov / float(ov @ ov)).astype(np.float32)


def open_gain(y: np.ndarray, center: np.ndarray, gain, open_vec: np.ndarray, open_dir: np.ndarray) -> np.ndarray:
    """``[n, E]``: expressions ``y [n, E]`` with their opening about ``center`` (``(y - center) @
    open_vec``) scaled by ``gain`` (a number or ``[n]``): ``(gain - 1)`` times it is added along
    ``open_dir`` (``open_dir @ open_vec = 1``), so the opening becomes ``gain`` times as wide and the
    rest of the face moves with it as ``open_dir`` says."""
    y = np.asarray(y, np.float32)
    g = np.asarray(gain, np.float32)
    d = ((y - center) @ open_vec) * (g - 1.0)
    return (y + d[:, None] * np.asarray(open_dir, np.float32)[None]).astype(np.float32)


def opening_direction(exps, open_vec: np.ndarray, A: np.ndarray | None = None) -> np.ndarray:
    """``[E]``: how real faces move with their mouth opening: for each clip's tracked expressions
    (``exps``: ``[n_i, E]`` arrays, tracked frames only) the least-squares slope of every
    coefficient on the opening (``exp @ open_vec``, both centred on the clip), averaged over clips
    (each clip counts once, whatever its length), kept to the lower face (``@ A``, the projector
    of :func:`mouth_projector`, where given) and scaled so that it opens the mouth by 1
    (``@ open_vec`` is 1). The jaw, the chin and both lips move together, as a real mouth opens.
    Raises ValueError when no clip has an opening that moves."""
    ov = np.asarray(open_vec, np.float64)
    slopes = []
    for e in exps:
        e = np.asarray(e, np.float64)
        if e.ndim != 2 or e.shape[1] != ov.shape[0] or len(e) < 3:
            continue
        e = e - e.mean(0)
        o = e @ ov
        if o @ o <= 1e-12:
            continue
        slopes.append((e * o[:, None]).sum(0) / (o @ o))
    if not slopes:
        raise ValueError("opening_direction: no clip with a moving mouth opening")
    d = np.mean(slopes, 0)
    if A is not None:
        d = d @ np.asarray(A, np.float64)
    return (d / float(d @ ov)).astype(np.float32)


def ema(y: np.ndarray, a: float, prev=None) -> tuple[np.ndarray, np.ndarray]:
    """Exponential moving average over the rows of ``y [n, E]``: ``out[t] = (1 - a) y[t] + a out[t - 1]``,
    ``out[-1] = prev`` (``None``: the first row itself). Returns ``(out [n, E] float32, out[-1])``
    (the state for the next rows; ``prev`` again when ``n`` is 0)."""
    y = np.asarray(y, np.float32)
    out = np.empty_like(y)
    last = None if prev is None else np.asarray(prev, np.float32)
    for t in range(y.shape[0]):
        last = y[t] if last is None else (1.0 - a) * y[t] + a * last
        out[t] = last
    return out, (last if y.shape[0] else prev)


def phone_columns(post: np.ndarray, cm: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """The predictor's viseme inputs: posteriors ``[n, k, K]`` of a frame's ``k`` tokens -> their
    log (floored at 1e-4), standardized with the training rows' column mean ``cm`` and scale ``cs``
    (``[k K]``): ``[n, k K]``."""
    lp = np.log(np.maximum(np.asarray(post, np.float32), 1e-4)).reshape(post.shape[0], -1)
    return (lp - cm) / cs


def mouth_projector(components: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """``[E, E]`` matrix ``A``: ``exp @ A`` keeps what ``exp`` does to the mesh points below the nose
    tip (lips, jaw, chin, lower cheeks) and nothing of the rest. With the orthonormal basis rows
    ``B`` and the mask ``M`` of those points, ``A = B M B^T``; ``exp @ (I - A)`` is the remainder, so
    ``mouth @ A + other @ (I - A)`` takes the lower face from one expression and the upper face from
    another (least squares on the mesh)."""
    B = np.asarray(components, np.float64)                       # [E, 1404]
    c = np.asarray(canonical, np.float64)
    lower = c[:468, 1] > c[2, 1]                                # point 2: just below the nose tip
    m = np.repeat(lower, 3).astype(np.float64)
    return (B * m[None]) @ B.T


def blend(exp_other: np.ndarray, exp_mouth: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``[n, E]``: the lower face of ``exp_mouth``, the rest of ``exp_other`` (see :func:`mouth_projector`)."""
    a = np.asarray(A, np.float32)
    return (np.asarray(exp_other, np.float32) @ (np.eye(a.shape[0], dtype=np.float32) - a)
            + np.asarray(exp_mouth, np.float32) @ a)


class SpeakerAmplitude:
    """A stream's own mouth amplitude, estimated online from its audio (issue 12, "amplitude true
    to the speaker"): ``weights/mouth_amp.npz``, trained by ``chatanyone.train.mouth amp``.

    The mouth predictor is trained on speaker-normalized targets, so it moves every voice as much
    as the corpus's median speaker; real speakers differ (the training clips' opening spread over
    the predictor's: 0.3-3x, log std 0.37). The only cue found in the audio (``motion/design.md``,
    "Session 10") is the spread of the Whisper tokens over speech frames: a linear map of the
    per-dimension standard deviations ``s [768]`` gives the log of the gain,
    ``e = clip(((s - mu) / sd) @ v + b - bias(n), lo, hi)`` (leave-one-speaker-out over the
    training clips: r 0.64 with the needed log gain); ``bias(n)``: the map's mean overshoot when the
    spreads come from only the first ``n`` speech frames (interpolated in ``log n`` from the file's
    ``bias_n``, ``bias``; 0 past the last). Online it is shrunk towards 1 while little speech is
    heard: ``gain = exp(e n / (n + n0))`` after ``n`` speech frames.

    State: running sums over the speech frames of the stream (frame order; :meth:`reset` for a new
    stream). A frame counts as speech where its weight (the speech gate's) is at least 0.5.
    """

    def __init__(self, path: str | Path):
        """Load ``path``. FileNotFoundError when absent; ValueError when it is not such a file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no speaker amplitude model at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                self.mu = z["mu"].astype(np.float64)
                self.sd = z["sd"].astype(np.float64)
                self.v = z["v"].astype(np.float64)
                self.b = float(z["b"])
                self.n0 = float(z["n0"])
                self.lo, self.hi = float(z["lo"]), float(z["hi"])
                # optional: the estimate's small-sample bias by speech frames heard (a few frames'
                # tokens spread less than a speaker's whole speech), subtracted before clipping
                self.bias_n = z["bias_n"].astype(np.float64) if "bias_n" in z.files else np.ones(1)
                self.bias = z["bias"].astype(np.float64) if "bias" in z.files else np.zeros(1)
        except (KeyError, OSError, EOFError, zipfile.BadZipFile, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a usable speaker amplitude model ({type(e).__name__}: {e})") from e
        d = self.mu.shape
        if len(d) != 1 or self.sd.shape != d or self.v.shape != d or not np.all(self.sd > 0) \
                or not all(np.all(np.isfinite(a)) for a in (self.mu, self.sd, self.v)):
            raise ValueError(f"{path}: mu, sd, v must be finite vectors of one length (sd > 0), "
                             f"got {self.mu.shape}, {self.sd.shape}, {self.v.shape}")
        if not (self.n0 >= 0 and self.lo <= 0 <= self.hi and np.isfinite(self.b)):
            raise ValueError(f"{path}: n0 {self.n0}, lo {self.lo}, hi {self.hi}, b {self.b} out of range")
        if self.bias_n.ndim != 1 or self.bias.shape != self.bias_n.shape or not np.all(self.bias_n >= 1) \
                or np.any(np.diff(self.bias_n) <= 0) or not np.all(np.isfinite(self.bias)):
            raise ValueError(f"{path}: bias_n must increase from 1 and bias match it, got {self.bias_n} and {self.bias}")
        self.dim = d[0]
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the gain goes back to 1."""
        self.n = 0
        self._s1 = np.zeros(self.dim)
        self._s2 = np.zeros(self.dim)

    def log_gain(self, std: np.ndarray, n: float | None = None) -> float:
        """The clipped log gain for per-dimension token spreads ``std [dim]`` measured over ``n``
        speech frames (their small-sample bias taken off; ``None``: many frames), no shrinkage."""
        e = ((np.asarray(std, np.float64) - self.mu) / self.sd) @ self.v + self.b
        if n is not None:
            e -= float(np.interp(np.log(max(n, 1.0)), np.log(self.bias_n), self.bias))
        return float(np.clip(e, self.lo, self.hi))

    def gain(self) -> float:
        """The gain now (1 before any speech frame)."""
        if self.n < 2:
            return 1.0
        m = self._s1 / self.n
        std = np.sqrt(np.maximum(self._s2 / self.n - m * m, 0.0))
        return float(np.exp(self.log_gain(std, self.n) * self.n / (self.n + self.n0)))

    def update(self, tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Consecutive frames' own Whisper tokens ``tokens [n, dim]`` (raw features) and their
        speech weights ``weights [n]`` -> ``[n]`` the gain at each frame (after counting it).
        Frames must come in stream order, each once; then the gains do not depend on how they are
        cut into calls. Pure numpy, microseconds per frame."""
        t = np.asarray(tokens, np.float64)
        w = np.asarray(weights, np.float64).reshape(-1)
        if t.ndim != 2 or t.shape[1] != self.dim or w.shape[0] != t.shape[0]:
            raise ValueError(f"SpeakerAmplitude.update: tokens must be [n, {self.dim}] with [n] weights, "
                             f"got {t.shape} and {w.shape}")
        out = np.ones(t.shape[0], np.float32)
        for i in range(t.shape[0]):
            if w[i] >= 0.5:
                self.n += 1
                self._s1 += t[i]
                self._s2 += t[i] * t[i]
            out[i] = self.gain()
        return out
