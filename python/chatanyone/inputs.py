"""The input-validation layer: every value a user hands to chatanyone passes through here once.

One module, so that the same rule holds wherever an input arrives (an array or a file, the API or
the command line). Each function either returns the input in the one internal form, or raises
``TypeError`` (wrong kind of thing) / ``ValueError`` (right kind, bad value) with a message that
names the argument and says what to do. Nothing here blocks or touches the network.

Images (:func:`image_rgb8`, :func:`read_image`):
    * files are decoded by content (the extension is ignored), EXIF orientation is applied (a phone
      photo comes out upright), and a truncated or corrupt file is refused, not patched with grey;
    * arrays and decoded files follow the same bit-depth rules: ``uint8`` is used as is, ``uint16``
      (16-bit PNG/TIFF) is scaled by 1/257, floating point must be finite and within [0, 1]
      (a float image in 0..255 is refused, not clipped); any other dtype is refused;
    * shapes ``[H, W]``, ``[H, W, 1]`` (gray), ``[H, W, 3]`` (RGB), ``[H, W, 4]`` (RGBA, composited
      over white); at least 16 pixels a side and at most :data:`MAX_IMAGE_PIXELS` pixels.

Audio (:func:`pcm_mono_float32`, :func:`pcm_to_float32`):
    * integer PCM of every common width: ``uint8`` (offset 128), ``int8``, ``int16``, ``int32``
      (24-bit PCM as WAV readers give it, left-aligned in 32 bits, is int32 too); full scale -> 1.0;
    * floating point (16/32/64-bit) is expected in [-1, 1]; a peak up to :data:`PCM_CLIP_PEAK` is
      clipped to [-1, 1] with a ``RuntimeWarning`` (decoder overshoot); a larger one is refused
      (it is integer PCM stored as float); NaN or infinite samples are refused;
    * ``[S]`` mono or ``[S, C]`` with 1-16 channels (channels last), averaged to mono;
    * a sample rate is an integer in [8000, 384000] Hz.

Time-outs (:func:`timeout_seconds`): None or ``inf`` wait for ever; a finite number >= 0 is seconds;
NaN, negative numbers and non-numbers are refused.
"""
from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np

MIN_IMAGE_SIDE = 16
MAX_IMAGE_PIXELS = 100_000_000     # 100 megapixels: larger is refused (memory), not resized
FLOAT_IMAGE_TOL = 1e-3             # float images may stray this far outside [0, 1] (rounding)
PCM_CLIP_PEAK = 2.0                # float PCM peaks above 1 and up to this are clipped with a warning
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 384000
MAX_CHANNELS = 16

_INT_PCM = {np.dtype(np.uint8): (128.0, 128.0), np.dtype(np.int8): (0.0, 128.0),
            np.dtype(np.int16): (0.0, 32768.0), np.dtype(np.int32): (0.0, 2147483648.0)}


class AvatarError(ValueError):
    """The photo (or avatar file) cannot become an avatar; the message says why and what to do.
    Re-exported as ``chatanyone.avatar.AvatarError``."""


class ImageError(AvatarError):
    """An image file or array that cannot be used: unreadable, truncated, out of range."""


# ----------------------------------------------------------------------------------------- images

def image_rgb8(image, *, name: str = "image") -> np.ndarray:
    """A path or an array -> RGB ``[H, W, 3]`` uint8, by the rules in this module's docstring.

    Args:
        image: a path (``str``/``os.PathLike``) to any image file Pillow reads (JPEG, PNG, WebP,
            TIFF, BMP, ...), or an array ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or
            ``[H, W, 4]`` (RGBA) of uint8, uint16 or float in [0, 1].
        name: how error messages call the argument.
    Raises:
        FileNotFoundError: no such file. TypeError: not a path or array, or an unsupported dtype.
        ImageError (a ValueError): unreadable or truncated file, NaN/Inf, float values outside
        [0, 1], a wrong shape, too small or too large.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, (bytes, bytearray)):
        raise TypeError(f"{name} must be a path or an array; to decode bytes, write them to a file")
    if not isinstance(image, np.ndarray) and not hasattr(image, "__array__"):
        raise TypeError(f"{name} must be a path or an image array, got {type(image).__name__}")
    return _array_rgb8(np.asarray(image), name)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file by content, apply its EXIF orientation, and return RGB ``[H, W, 3]``
    uint8 (the array rules of :func:`image_rgb8` apply to the decoded pixels). Blocks while
    decoding (~10-100 ms for a photo).

    Raises:
        FileNotFoundError: no such file. ImageError: not an image, truncated or corrupt, or a
        pixel format with no rule here (32-bit integer, complex).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"image not found: {p}")
    if os.path.isdir(p):
        raise ImageError(f"{p} is a folder, not an image file")
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ImageError(f"{p} is {im.width}x{im.height} pixels: more than "
                                 f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels; downsize it first")
            im.load()  # decodes now: a truncated file raises here (never patched with grey)
            try:
                im = ImageOps.exif_transpose(im)
            except Exception as exc:  # a malformed EXIF block: the pixels are still good
                warnings.warn(f"{p}: unreadable EXIF orientation ignored ({exc})", RuntimeWarning,
                              stacklevel=2)
            a = _pil_to_array(im, p)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {p} as an image (use a JPEG or PNG photo)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{p}: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's decoder errors
        raise ImageError(f"{p} is truncated or corrupt ({exc}): re-export or re-download it") from None
    return _array_rgb8(a, p)


def _pil_to_array(im, p: str) -> np.ndarray:
    mode = im.mode
    if mode in ("RGB", "RGBA", "L"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)   # 16-bit gray, any byte order
    if mode == "F":
        return np.asarray(im, np.float32)          # float TIFF: the [0, 1] rule applies
    if mode == "I":
        a = np.asarray(im)
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return a.astype(np.uint16)             # 16-bit gray that Pillow widened to int32
        raise ImageError(f"{p} has 32-bit integer pixels: save it as 8- or 16-bit")
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("LA", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))           # P, CMYK, YCbCr, LAB, HSV


def _array_rgb8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == object or a.dtype.kind not in "uif":
        raise TypeError(f"{name} dtype must be uint8, uint16 or float in [0, 1], got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name} must be [H, W], [H, W, 1], [H, W, 3] (RGB) or [H, W, 4] (RGBA), "
                         f"got shape {a.shape}")
    h, w = a.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageError(f"{name} is {w}x{h} pixels: far too small for a portrait "
                         f"(at least {MIN_IMAGE_SIDE} a side)")
    if h * w > MAX_IMAGE_PIXELS:
        raise ImageError(f"{name} is {w}x{h} pixels: more than {MAX_IMAGE_PIXELS // 1_000_000} "
                         "megapixels; downsize it first")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise ImageError(f"{name} contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -FLOAT_IMAGE_TOL or hi > 1 + FLOAT_IMAGE_TOL:
            hint = ": divide by 255, or pass uint8" if hi > 1.5 else ""
            raise ImageError(f"{name} is floating point, so its values must be in [0, 1]; "
                             f"got [{lo:.4g}, {hi:.4g}]{hint}")
        a = np.clip(a.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"{name} dtype must be uint8, uint16 or float in [0, 1], got {a.dtype} "
                        "(convert it: uint8 for 0-255 values)")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        alpha = a[:, :, 3:].astype(np.float32) / 255.0
        a = (a[:, :, :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


# ------------------------------------------------------------------------------------------ audio

def sample_rate_hz(rate, *, name: str = "sample_rate") -> int:
    """Check a sample rate: an integer (Python or numpy) in [8000, 384000] Hz."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer (Hz), got {rate!r}")
    rate = int(rate)
    if rate <= 0:
        raise ValueError(f"{name} must be a positive integer (Hz), got {rate}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate}")
    return rate


def pcm_to_float32(a, *, name: str = "pcm") -> np.ndarray:
    """Samples of any supported dtype -> float32 in [-1, 1], same shape (see the module docstring).

    Raises:
        TypeError: an unsupported dtype. ValueError: NaN/Inf, or a float peak above
        :data:`PCM_CLIP_PEAK`.
    """
    a = np.asarray(a)
    scale = _INT_PCM.get(a.dtype)
    if scale is not None:
        off, full = scale
        return ((a.astype(np.float32) - off) / full).astype(np.float32)
    if a.dtype.kind != "f" or a.dtype.itemsize > 8:
        raise TypeError(f"{name} must be uint8, int8, int16, int32 (24-bit left-aligned), float16, "
                        f"float32 or float64 samples, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.size == 0:
        return a
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    peak = float(np.max(np.abs(a)))
    if peak > PCM_CLIP_PEAK:
        raise ValueError(f"{name} is floating point, so its samples must be in [-1, 1]; got a peak "
                         f"of {peak:.4g} (integer PCM? pass it as int16/int32, or divide by full scale)")
    if peak > 1.0:
        warnings.warn(f"{name}: float samples peak at {peak:.3f}, above 1.0: clipped to [-1, 1]",
                      RuntimeWarning, stacklevel=3)
        a = np.clip(a, -1.0, 1.0)
    return a


def pcm_mono_float32(pcm, *, name: str = "pcm") -> np.ndarray:
    """Check ``pcm`` (``[S]`` or ``[S, C]``, any dtype :func:`pcm_to_float32` accepts) and return
    float32 mono ``[S]`` in [-1, 1] (channels averaged), at the same rate."""
    if isinstance(pcm, (str, bytes, bytearray)) or (
            not isinstance(pcm, (np.ndarray, list, tuple)) and not hasattr(pcm, "__array__")):
        raise TypeError(f"{name} must be an array of samples, got {type(pcm).__name__}")
    try:
        a = np.asarray(pcm)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise ValueError(f"{name} must be a rectangular array of samples ({exc})") from None
    if a.ndim == 2 and a.shape[1] > MAX_CHANNELS and a.shape[0] <= MAX_CHANNELS:
        raise ValueError(f"{name} must be [samples] or [samples, channels] (channels last), got "
                         f"shape {a.shape}")
    if a.ndim == 2 and (a.shape[1] == 0 or a.shape[1] > MAX_CHANNELS):
        raise ValueError(f"{name} must be [samples] or [samples, channels] with 1-{MAX_CHANNELS} "
                         f"channels (channels last), got shape {a.shape}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be [samples] or [samples, channels], got shape {a.shape}")
    a = pcm_to_float32(a, name=name)
    if a.ndim == 2:
        a = a.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(a, dtype=np.float32)


# ------------------------------------------------------------------------------- numbers, time-outs

def timeout_seconds(timeout, *, name: str = "timeout") -> float | None:
    """``None`` or ``inf`` -> None (wait for ever); a finite number >= 0 -> float seconds.

    Raises:
        TypeError: not a number (``bool`` included). ValueError: NaN or negative.
    """
    if timeout is None:
        return None
    if isinstance(timeout, (bool, np.bool_)) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{name} must be None or a number of seconds, got {type(timeout).__name__}")
    t = float(timeout)
    if math.isnan(t):
        raise ValueError(f"{name} must be a number of seconds >= 0, got NaN")
    if t < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {t}")
    return None if math.isinf(t) else t


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------ style (motion) files

def motion_clip_arrays(src, clip: dict | None = None) -> dict[str, np.ndarray]:
    """Read (when ``clip`` is None) and check a style reference's motion: a ``motion.npz`` with
    ``head [T, 6]``, ``exp [T, E]``, ``eye [T, 4]`` (T >= 1, finite) and optionally ``face_ok [T]``,
    ``hands_ok [T, ...]``. Returns the arrays as a dict. Blocks while reading (~10 ms).

    Raises:
        FileNotFoundError: no such file. ValueError (message starting with ``style:``): anything
        else, whatever the corruption: empty, truncated, renamed, an avatar file, missing or
        malformed arrays.
    """
    if clip is None:
        p = os.fspath(src)
        try:
            with np.load(p, allow_pickle=False) as z:
                clip = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # BadZipFile, EOFError, OSError, ValueError (pickled), zlib.error
            raise ValueError(f"style: cannot read {p} as a motion file ({type(exc).__name__}: {exc}); "
                             "give a motion.npz from `chatanyone prepare-data` or a video") from None
    where = f"style {src}" if isinstance(src, (str, os.PathLike)) else "style"
    if "format_version" in clip and "crop" in clip:
        raise ValueError(f"{where} is an avatar file, not a motion file: give a motion.npz from "
                         "`chatanyone prepare-data`, or a video")
    for key, width in (("head", 6), ("exp", None), ("eye", 4)):
        if key not in clip:
            raise ValueError(f"{where}: no {key!r} array (a motion file has head, exp and eye)")
        v = np.asarray(clip[key])
        if v.dtype.kind not in "fiu" or v.ndim != 2 or (width is not None and v.shape[1] != width):
            raise ValueError(f"{where}: {key!r} must be a numeric [T, {width or 'E'}] array, got "
                             f"{v.dtype} {list(v.shape)}")
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ValueError(f"{where}: {key!r} holds NaN or infinite values")
    t = {np.asarray(clip[k]).shape[0] for k in ("head", "exp", "eye")}
    if len(t) != 1 or 0 in t:
        raise ValueError(f"{where}: head, exp and eye must have the same number of frames (>= 1), "
                         f"got {sorted(t)}")
    n = t.pop()
    for key in ("face_ok", "hands_ok"):
        if key in clip:
            v = np.asarray(clip[key])
            if v.dtype.kind not in "fiub" or v.ndim < 1 or v.shape[0] != n:
                raise ValueError(f"{where}: {key!r} must be numeric with {n} frames, got "
                                 f"{v.dtype} {list(v.shape)}")
    return {k: np.asarray(v) for k, v in clip.items()}
