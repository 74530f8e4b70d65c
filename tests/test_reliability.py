"""Fuzz and property tests over the public boundaries (issue 14): image files and arrays, audio
arrays and files, configs, avatar and style files, time-outs, bench arguments, the CLI, and
Session call orders. Every case ends in the documented exception or a correct result, never a hang
(each test has a time limit, see conftest.py), and a Session stays usable afterwards.

Bounded for CI: a fixed number of derandomized examples per test. ``CHATANYONE_FUZZ=N`` multiplies
the examples for a deeper run (the issue's table was made with N=10).
"""
import gc
import io
import math
import os
import threading
import warnings
import weakref
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chatanyone import inputs
from chatanyone.config import SessionConfig
from chatanyone.session import Session

from test_session_timeline import RecordingPipeline

_SCALE = int(os.environ.get("CHATANYONE_FUZZ", "1"))


def fuzz(n):
    return settings(max_examples=n * _SCALE, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def _bounded(fn, seconds=10.0):
    """Run ``fn`` in a thread; fail if it has not returned after ``seconds`` (a hang). Returns its
    result or re-raises its exception."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"hung for more than {seconds} s"
    if "exc" in box:
        raise box["exc"]
    return box.get("value")


def _usable(s: Session) -> None:
    """A session still works: one frame of new speech, then the end of the utterance."""
    while True:  # drain whatever an interrupted or unfinished call order left
        try:
            if s.next_frame(timeout=0) is None:
                continue
        except TimeoutError:
            break
    s.feed_audio(np.zeros(640, np.float32), 16000)
    s.flush()
    frames = []
    while (f := s.next_frame(timeout=10)) is not None:
        frames.append(f)
    assert len(frames) >= 1
    assert all(b.index == a.index + 1 for a, b in zip(frames, frames[1:]))


# ================================================================================ images
_DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16,
           np.float32, np.float64, np.bool_, np.complex64]


@pytest.mark.time_limit(120 * _SCALE)
@fuzz(60)
@given(dtype=st.sampled_from(_DTYPES),
       shape=st.one_of(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=40),
                       st.tuples(st.integers(16, 40), st.integers(16, 40), st.sampled_from([1, 2, 3, 4, 5]))),
       data=st.data())
def test_image_arrays_follow_the_dtype_rules(dtype, shape, data):
    a = data.draw(hnp.arrays(dtype, shape))
    try:
        out = inputs.image_rgb8(a)
    except TypeError as exc:
        assert np.dtype(dtype) not in (np.uint8, np.uint16) and "dtype" in str(exc)
        assert np.dtype(dtype).kind not in "f", exc
        return
    except ValueError as exc:
        assert isinstance(exc, inputs.ImageError)
        return
    # accepted: only the stated dtypes and shapes, converted by the stated rule
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.c_contiguous
    assert np.dtype(dtype) in (np.uint8, np.uint16) or np.dtype(dtype).kind == "f"
    g = a[..., 0] if a.ndim == 3 and a.shape[2] in (1, 3, 4) else a
    if np.dtype(dtype).kind == "f":
        assert np.all(np.isfinite(a)) and a.min() >= -1e-3 and a.max() <= 1 + 1e-3
        ref = np.clip(np.round(g.astype(np.float64) * 255), 0, 255)
    elif dtype == np.uint16:
        ref = np.round(g.astype(np.float64) / 257)
    else:
        ref = g.astype(np.float64)
    if not (a.ndim == 3 and a.shape[2] == 4):  # RGBA is composited over white
        assert np.abs(out[..., 0].astype(np.float64) - ref).max() <= 1


def test_float_0_255_uint16_int16_nan_images_name_the_real_cause():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    with pytest.raises(inputs.ImageError, match=r"\[0, 1\].*divide by 255"):
        inputs.image_rgb8(img.astype(np.float32))
    np.testing.assert_array_equal(inputs.image_rgb8(img.astype(np.uint16) * 257), img)
    with pytest.raises(TypeError, match="int16"):
        inputs.image_rgb8(img.astype(np.int16))
    bad = img.astype(np.float32) / 255
    bad[3, 3, 1] = np.nan
    with pytest.raises(inputs.ImageError, match="NaN"):
        inputs.image_rgb8(bad)
    np.testing.assert_array_equal(inputs.image_rgb8(img.astype(np.float64) / 255), img)


def _png(a, **kw):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(a, exif=None):
    from PIL import Image

    buf = io.BytesIO()
    kw = {"exif": exif} if exif is not None else {}
    Image.fromarray(a).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _photo():
    y, x = np.mgrid[0:48, 0:32]
    return np.stack([x * 8, y * 5, (x + y) * 3], -1).astype(np.uint8)


def test_files_and_arrays_follow_the_same_bit_depth_rule(tmp_path):
    from PIL import Image

    a8 = _photo()
    p = tmp_path / "x.png"
    p.write_bytes(_png(a8))
    np.testing.assert_array_equal(inputs.image_rgb8(p), inputs.image_rgb8(a8))
    g16 = (np.arange(48 * 32).reshape(48, 32) * 40).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(inputs.image_rgb8(tmp_path / "g16.png"), inputs.image_rgb8(g16))
    f = (a8[..., 0] / 255.0).astype(np.float32)
    Image.fromarray(f, mode="F").save(tmp_path / "f.tiff")
    np.testing.assert_array_equal(inputs.image_rgb8(tmp_path / "f.tiff"), inputs.image_rgb8(f))
    Image.fromarray(f * 255, mode="F").save(tmp_path / "f255.tiff")   # float 0..255: refused alike
    with pytest.raises(inputs.ImageError, match=r"\[0, 1\]"):
        inputs.image_rgb8(tmp_path / "f255.tiff")
    with pytest.raises(inputs.ImageError, match=r"\[0, 1\]"):
        inputs.image_rgb8(f * 255)


def test_decoded_by_content_not_by_extension(tmp_path):
    a = _photo()
    p = tmp_path / "photo.jpg"   # a PNG named .jpg
    p.write_bytes(_png(a))
    np.testing.assert_array_equal(inputs.read_image(p), a)
    q = tmp_path / "speech.png"  # not an image at all
    q.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(100))
    with pytest.raises(inputs.ImageError, match="cannot read"):
        inputs.read_image(q)


@pytest.mark.parametrize("orientation, turn", [(1, lambda a: a), (3, lambda a: a[::-1, ::-1]),
                                               (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    from PIL import Image

    a = _photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "phone.jpg"
    p.write_bytes(_jpeg(a, exif=exif.tobytes()))
    got = inputs.read_image(p).astype(np.int16)
    ref = turn(a).astype(np.int16)
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() < 4  # JPEG loss only


@pytest.mark.time_limit(120 * _SCALE)
@fuzz(40)
@given(kind=st.sampled_from(["png", "jpeg"]), cut=st.floats(0.0, 1.0, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3))
def test_truncated_or_corrupt_image_files_are_refused_or_exact(tmp_path_factory, kind, cut, flips):
    """A damaged file is refused with ImageError; whatever decodes is the whole image (a cut that
    leaves only trailing metadata missing may still decode, exactly), never a grey-patched one."""
    a = _photo()
    data = bytearray(_png(a) if kind == "png" else _jpeg(a))
    full = inputs.image_rgb8(_write(tmp_path_factory, bytes(data)))
    for pos, x in flips:
        data[int(pos * len(data))] ^= x
    data = bytes(data[: int(cut * len(data))]) if cut > 0 else bytes(data)
    try:
        got = _bounded(lambda: inputs.read_image(_write(tmp_path_factory, data)))
    except inputs.ImageError:
        return
    assert got.shape == full.shape and got.dtype == np.uint8
    if not flips:
        np.testing.assert_array_equal(got, full)


def test_truncated_jpeg_is_refused(tmp_path):
    data = _jpeg(_photo())
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(inputs.ImageError, match="truncated"):
        inputs.read_image(p)


def _write(factory, data: bytes, suffix=".bin"):
    d = factory.mktemp("f")
    p = d / ("x" + suffix)
    p.write_bytes(data)
    return p


# ================================================================================ audio
_PCM_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.float16, np.float32,
               np.float64, np.bool_, np.complex64]


@pytest.mark.time_limit(120 * _SCALE)
@fuzz(80)
@given(dtype=st.sampled_from(_PCM_DTYPES),
       shape=st.one_of(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=64),
                       st.tuples(st.integers(0, 64), st.integers(0, 20))),
       data=st.data())
def test_pcm_arrays_follow_the_stated_rules(dtype, shape, data):
    a = data.draw(hnp.arrays(dtype, shape))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = inputs.pcm_mono_float32(a)
        except TypeError as exc:
            assert np.dtype(dtype) in (np.int64, np.uint16, np.bool_, np.complex64), exc
            return
        except ValueError as exc:
            msg = str(exc)
            assert any(w in msg for w in ("shape", "channels", "NaN", "[-1, 1]")), msg
            return
    assert out.dtype == np.float32 and out.ndim == 1 and out.shape[0] == a.shape[0]
    assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
    x = a if a.ndim == 1 else a.astype(np.float64).mean(1) if np.dtype(dtype).kind == "f" else a
    if np.dtype(dtype).kind in "iu":
        off, full = {np.uint8: (128, 128), np.int8: (0, 128), np.int16: (0, 32768),
                     np.int32: (0, 2 ** 31)}[dtype]
        ref = (a.astype(np.float64) - off) / full
        ref = ref if ref.ndim == 1 else ref.mean(1)
        np.testing.assert_allclose(out, ref, atol=1e-6)
    else:
        peak = np.abs(a.astype(np.float64)).max() if a.size else 0
        assert peak <= inputs.PCM_CLIP_PEAK
        assert bool(caught) == (peak > 1.0)
        ref = np.clip(a.astype(np.float32), -1, 1).astype(np.float64)
        ref = ref if ref.ndim == 1 else ref.mean(1)
        np.testing.assert_allclose(out, ref, atol=1e-3)
    del x


@pytest.mark.parametrize("subtype, atol", [("PCM_U8", 1 / 100), ("PCM_S8", 1 / 100), ("PCM_16", 1e-4),
                                           ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 1e-7),
                                           ("DOUBLE", 1e-7)])
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_every_pcm_width_in_files_reads_as_the_signal(tmp_path, subtype, atol, fmt):
    import soundfile as sf

    if (fmt == "FLAC") != (subtype in ("PCM_S8", "PCM_16", "PCM_24")) and subtype not in ("PCM_16", "PCM_24"):
        pytest.skip(f"{fmt} has no {subtype}")
    x = (0.5 * np.sin(np.arange(4000) * 0.03)).astype(np.float64)
    p = tmp_path / f"s.{fmt.lower()}"
    sf.write(p, np.stack([x, -x], 1), 22050, subtype=subtype, format=fmt)
    from chatanyone.media import read_audio

    pcm, rate = read_audio(p)
    assert rate == 22050 and pcm.shape == (4000, 2) and pcm.dtype == np.float32
    np.testing.assert_allclose(pcm[:, 0], x, atol=atol)
    np.testing.assert_allclose(pcm[:, 1], -x, atol=atol)


def test_nan_in_a_float_wav_is_refused(tmp_path):
    import soundfile as sf
    from chatanyone.media import read_audio

    x = np.zeros(1000, np.float32)
    x[500] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        read_audio(tmp_path / "nan.wav")


@pytest.mark.time_limit(120 * _SCALE)
@fuzz(30)
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                      st.integers(1, 255)), max_size=4))
def test_damaged_audio_files_give_value_error_or_audio(tmp_path_factory, cut, flips):
    import soundfile as sf
    from chatanyone.media import read_audio

    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(np.arange(3000) * 0.05)).astype(np.float32), 16000, format="WAV",
             subtype="PCM_16")
    data = bytearray(buf.getvalue())
    for pos, x in flips:
        data[int(pos * len(data))] ^= x
    p = _write(tmp_path_factory, bytes(data[: int(cut * len(data))]), ".wav")
    try:
        pcm, rate = _bounded(lambda: read_audio(p))
    except ValueError:
        return
    assert pcm.dtype == np.float32 and pcm.ndim == 2 and np.all(np.abs(pcm) <= 1)
    assert inputs.MIN_SAMPLE_RATE <= rate <= inputs.MAX_SAMPLE_RATE


# ================================================================================ config
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.text(max_size=4), max_size=2),
                    st.tuples(st.text(max_size=4)), st.sampled_from(["fast", "quality", "host", "cpu",
                                                                     "cuda:0", "CPUExecutionProvider"]),
                    st.builds(np.int64, st.integers(-5, 5)), st.builds(np.float32, st.floats(-5, 5)))
_FIELDS = ["fps", "preset", "style", "intensity", "seed", "ddim_steps", "realtime", "providers",
           "frame_device", "max_ahead_frames", "intra_op_threads", "output_size", "refine_mouth"]


@pytest.mark.time_limit(60 * _SCALE)
@fuzz(300)
@given(kw=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=3))
def test_every_config_field_is_type_checked(kw):
    try:
        c = SessionConfig(**kw)
    except (TypeError, ValueError) as exc:
        assert any(k in str(exc) for k in kw), exc  # the message names the field
        return
    # accepted: each field has the documented type and range
    assert isinstance(c.fps, float) and 1 <= c.fps <= 120
    assert isinstance(c.intensity, float) and 0 <= c.intensity <= 2
    assert c.preset in ("fast", "quality")
    assert type(c.seed) is int and c.seed >= 0
    assert c.ddim_steps is None or (type(c.ddim_steps) is int and 1 <= c.ddim_steps <= 100)
    assert c.output_size is None or (type(c.output_size) is int and 64 <= c.output_size <= 4096)
    assert type(c.realtime) is bool
    assert type(c.refine_mouth) is bool
    assert c.providers is None or (type(c.providers) is tuple and all(isinstance(p, str) for p in c.providers))
    assert type(c.max_ahead_frames) is int and c.max_ahead_frames >= 1
    assert type(c.intra_op_threads) is int and 0 <= c.intra_op_threads <= inputs.cpu_count()
    hash(c)  # a frozen config is hashable: no list slipped in


def test_config_cases_from_the_issue():
    with pytest.raises(TypeError, match="providers"):
        SessionConfig(providers=5)
    with pytest.raises(TypeError, match="preset"):
        SessionConfig(preset=["fast"])
    with pytest.raises(ValueError, match="intra_op_threads"):
        SessionConfig(intra_op_threads=inputs.cpu_count() + 1)
    assert SessionConfig(intra_op_threads=inputs.cpu_count()).intra_op_threads == inputs.cpu_count()
    assert SessionConfig(seed=np.int64(3), fps=np.float32(30)).seed == 3
    with pytest.raises(ValueError, match="fps"):
        SessionConfig(fps=float("nan"))


# ================================================================================ avatar and style files
@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    """A real avatar file (prepared once from the built-in photo)."""
    from chatanyone.avatar import Avatar
    from chatanyone.assets import default_avatar_image

    av = Avatar.prepare(default_avatar_image())
    p = tmp_path_factory.mktemp("av") / "a.avatar.npz"
    av.save(p)
    return p, av


@pytest.mark.time_limit(180 * _SCALE)
@fuzz(40)
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                      st.integers(1, 255)), max_size=3))
def test_damaged_avatar_files_raise_avatar_error(avatar_file, tmp_path_factory, cut, flips):
    from chatanyone.avatar import Avatar, AvatarError

    src, ref = avatar_file
    data = bytearray(src.read_bytes())
    for pos, x in flips:
        data[int(pos * len(data))] ^= x
    p = _write(tmp_path_factory, bytes(data[: int(cut * len(data))]), ".npz")
    try:
        got = _bounded(lambda: Avatar.load(p))
    except AvatarError:
        return
    # it loaded: then it is the avatar (a flip inside a part zip never reads, e.g. a comment)
    np.testing.assert_array_equal(got.crop, ref.crop)
    np.testing.assert_array_equal(got.kp, ref.kp)


def _raw(path, data):
    path.write_bytes(data)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make", [
    lambda p: _raw(p, b""),                                          # empty
    lambda p: _raw(p, b"hello world"),                               # text
    lambda p: _npz(p, head=np.zeros((10, 6)), exp=np.zeros((10, 64)), eye=np.zeros((10, 4))),  # a style file
    lambda p: _npz(p, format_version=np.int32(1)),                              # missing arrays
    lambda p: _npz(p, format_version=np.array("x")),                            # malformed version
    lambda p: _npz(p, format_version=np.int32(99)),                             # future version
    lambda p: _zip_with(p, "format_version.npy", b"\x93NUMPY garbage"),          # a broken member
])
def test_avatar_load_has_one_exception_type(tmp_path, make):
    from chatanyone.avatar import Avatar, AvatarError

    p = make(tmp_path / "bad.npz")
    with pytest.raises(AvatarError):
        Avatar.load(p)


def test_avatar_file_with_a_wrong_array_is_refused(avatar_file, tmp_path):
    from chatanyone.avatar import Avatar, AvatarError

    src, _ = avatar_file
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    for key, bad in (("kp", np.zeros((5, 3), np.float32)), ("crop", np.zeros((10, 10), np.uint8)),
                     ("src_head", np.full(6, np.nan, np.float32)), ("hands_ok", np.array(["a", "b"]))):
        p = tmp_path / f"{key}.npz"
        np.savez(p, **{**arrays, key: bad})
        with pytest.raises(AvatarError, match=key):
            Avatar.load(p)


def _zip_with(p, name, data):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(name, data)
    return p


@pytest.mark.parametrize("make, words", [
    (lambda p: _raw(p, b""), "cannot read"),
    (lambda p: _raw(p, b"\x00" * 100), "cannot read"),
    (lambda p: _npz(p, format_version=np.int32(1), crop=np.zeros((4, 4, 3), np.uint8)), "avatar file"),
    (lambda p: _npz(p, head=np.zeros((10, 6))), "'exp'"),
    (lambda p: _npz(p, head=np.zeros((10, 5)), exp=np.zeros((10, 3)), eye=np.zeros((10, 4))), "'head'"),
    (lambda p: _npz(p, head=np.zeros((0, 6)), exp=np.zeros((0, 3)), eye=np.zeros((0, 4))), "frames"),
    (lambda p: _npz(p, head=np.full((3, 6), np.nan), exp=np.zeros((3, 3)), eye=np.zeros((3, 4))), "NaN"),
])
def test_style_files_raise_value_error(tmp_path, make, words):
    from chatanyone.motion.generator import load_motion_clip

    p = make(tmp_path / "style.npz")
    with pytest.raises(ValueError, match=words):
        load_motion_clip(p)


# ================================================================================ time-outs, bench args
@pytest.mark.time_limit(60 * _SCALE)
@fuzz(60)
@given(t=st.one_of(st.none(), st.floats(max_value=0.05, allow_nan=False),
                   st.integers(-5, 0), st.booleans(), st.text(max_size=3), st.just(float("inf")),
                   st.just(float("nan")), st.just(-1e-9)))
def test_next_frame_timeouts_never_hang(t):
    with Session(None, SessionConfig(), _pipeline=RecordingPipeline()) as s:
        feed = t is None or (isinstance(t, float) and math.isinf(t) and t > 0)
        if feed:  # an unbounded wait needs something to wait for
            s.feed_audio(np.zeros(640, np.float32), 16000)
            s.flush()

        def call():
            return s.next_frame(timeout=t)

        try:
            f = _bounded(call, 10)
        except TimeoutError:
            assert not feed and isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0
        except TypeError:
            assert isinstance(t, (bool, str))
        except ValueError:
            assert isinstance(t, (int, float)) and (math.isnan(t) or t < 0)
        else:
            assert feed and f is not None
        _usable(s)


@pytest.mark.parametrize("seconds, steps", [(0, None), (-1, None), (float("nan"), None),
                                            (float("inf"), None), (1e9, None), (1.0, 0), (1.0, 1000)])
def test_bench_validates_its_arguments(seconds, steps):
    from chatanyone.cli.bench import bench

    with pytest.raises(ValueError, match="seconds|steps"):
        _bounded(lambda: bench("fast", seconds, steps), 10)


@pytest.mark.parametrize("runs", [0, -1, 101, 1.5, True, "3"])
def test_bench_validates_latency_runs(runs):
    from chatanyone.cli.bench import bench

    with pytest.raises(ValueError, match="latency-runs"):
        _bounded(lambda: bench("fast", 1.0, None, latency_runs=runs), 10)


# ================================================================================ CLI
@pytest.mark.time_limit(120 * _SCALE)
@pytest.mark.parametrize("argv, words", [
    (["bench", "--seconds", "0"], "--seconds"),
    (["bench", "--seconds", "-1"], "--seconds"),
    (["bench", "--seconds", "nan"], "--seconds"),
    (["render", "{photo}", "{wav}", "-o", "{tmp}"], "folder"),
    (["render", "{photo}", "{wav}", "-o", "{tmp}/d.mp4"], "folder"),  # d.mp4 is a folder
    (["render", "{photo}", "{u8wav}", "-o", "{ro}/x.mp4"], "not writable"),
    (["render", "{photo}", "{wav}", "-o", "{tmp}/x.mp4", "--steps", "0"], "ddim_steps"),
    (["render", "{trunc}", "{wav}", "-o", "{tmp}/x.mp4"], "truncated"),
    (["render", "{wav}", "{wav}", "-o", "{tmp}/x.mp4"], "image"),
    (["render", "{bad_avatar}", "{wav}", "-o", "{tmp}/x.mp4"], "avatar"),
    (["demo", "-o", "{tmp}"], "folder"),
])
def test_cli_user_errors_are_one_line_and_v_shows_the_traceback(tmp_path, capsys, argv, words):
    import soundfile as sf
    from chatanyone.cli import main

    (tmp_path / "d.mp4").mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    sf.write(tmp_path / "s.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "u8.wav", np.zeros(1600, np.float32), 16000, subtype="PCM_U8")
    (tmp_path / "p.png").write_bytes(_png(_photo()))
    jpg = _jpeg(_photo())
    (tmp_path / "t.jpg").write_bytes(jpg[: len(jpg) // 2])
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    fmt = dict(photo=tmp_path / "p.png", wav=tmp_path / "s.wav", u8wav=tmp_path / "u8.wav", tmp=tmp_path,
               ro=ro, trunc=tmp_path / "t.jpg", bad_avatar=tmp_path / "bad.npz")
    needs_ro = "{ro}" in " ".join(argv)
    argv = [a.format(**fmt) for a in argv]
    try:
        if needs_ro and os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        lines = [ln for ln in err.splitlines() if not ln.startswith(("INFO", "DEBUG", "WARNING"))]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert words.lower() in lines[0].lower(), lines[0]
        assert main(["-v", *argv]) == 2
        assert "Traceback" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


# ================================================================================ Session call orders
_OPS = st.lists(st.one_of(
    st.tuples(st.just("feed"), st.integers(1, 20000), st.sampled_from([16000, 22050, 44100, 8000])),
    st.tuples(st.just("feed_bad"), st.sampled_from(["nan", "dtype", "rate", "shape"]), st.just(0)),
    st.tuples(st.just("flush"), st.just(0), st.just(0)),
    st.tuples(st.just("interrupt"), st.just(0), st.just(0)),
    st.tuples(st.just("pull"), st.integers(1, 40), st.just(0)),
), max_size=14)


@pytest.mark.time_limit(240 * _SCALE)
@fuzz(15)
@given(ops=_OPS, fps=st.sampled_from([25.0, 30.0, 24.0]))
def test_any_call_order_keeps_the_timeline_whole(ops, fps):
    """Frame indices only ever step by one; every None ends an utterance; an interrupt() with
    nothing queued changes nothing; and afterwards a new utterance has exactly its frames."""
    bad = {"nan": (np.array([np.nan], np.float32), 16000), "dtype": (np.zeros(4, np.uint16), 16000),
           "rate": (np.zeros(4, np.float32), 7), "shape": (np.zeros((2, 2, 2), np.float32), 16000)}
    with Session(None, SessionConfig(fps=fps, max_ahead_frames=8), _pipeline=RecordingPipeline()) as s:
        last = -1
        for op, a, b in ops:
            if op == "feed":
                s.feed_audio(np.full(a, 0.1, np.float32), b)
            elif op == "feed_bad":
                with pytest.raises((TypeError, ValueError)):
                    s.feed_audio(*bad[a])
            elif op == "flush":
                s.flush()
            elif op == "interrupt":
                s.interrupt()
            else:
                for _ in range(a):
                    try:
                        f = _bounded(lambda: s.next_frame(timeout=0.2), 10)
                    except TimeoutError:
                        break
                    if f is not None:
                        assert f.index == last + 1
                        last = f.index
        s.interrupt()  # whatever is queued goes; all that is left is final, so it comes at once
        while True:
            try:
                f = _bounded(lambda: s.next_frame(timeout=0.3), 20)
            except TimeoutError:
                break
            if f is not None:
                assert f.index == last + 1
                last = f.index
        # an interrupt with nothing queued leaves no end marker behind
        s.interrupt()
        s.feed_audio(np.zeros(16000, np.float32), 16000)
        s.flush()
        got = []
        while (f := _bounded(lambda: s.next_frame(timeout=10), 20)) is not None:
            got.append(f.index)
        assert got == list(range(last + 1, last + 1 + math.ceil(fps)))


# ================================================================================ resources
def _session_threads():
    return [t for t in threading.enumerate() if t.name.startswith("chatanyone-")]


@pytest.mark.time_limit(60 * _SCALE)
def test_dropped_sessions_free_threads_and_memory_with_a_resource_warning():
    before = len(_session_threads())
    pipes = []
    with pytest.warns(ResourceWarning, match="unclosed chatanyone Session"):
        for _ in range(8):
            pipe = RecordingPipeline()
            s = Session(None, SessionConfig(), _pipeline=pipe)
            s.feed_audio(np.zeros(16000, np.float32), 16000)
            assert s.next_frame(timeout=10) is not None
            pipes.append(weakref.ref(pipe))
            del s, pipe
        gc.collect()
    for t in _session_threads():
        t.join(5)
    assert len(_session_threads()) == before
    gc.collect()
    assert all(r() is None for r in pipes)  # the pipelines (the networks' memory) went too


def test_closed_session_frees_its_pipeline():
    pipe = RecordingPipeline()
    r = weakref.ref(pipe)
    s = Session(None, SessionConfig(), _pipeline=pipe)
    del pipe
    s.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # closed: no warning when collected
        gc.collect()
        assert r() is None
        del s
        gc.collect()


@pytest.mark.time_limit(60 * _SCALE)
def test_a_reader_is_never_blocked_by_a_feeder_resampling(monkeypatch):
    """While another thread resamples a big chunk, next_frame(timeout=...) still answers:
    the feeder holds no lock the reader needs between its one-second pieces."""
    from chatanyone.audio import resample

    inside, release = threading.Event(), threading.Event()
    real_push = resample.StreamResampler.push
    calls = []

    def slow_push(self, x):
        calls.append(x.size)
        if len(calls) == 2:          # the second one-second piece: hold the feeder here
            inside.set()
            assert release.wait(30)
        return real_push(self, x)

    monkeypatch.setattr(resample.StreamResampler, "push", slow_push)
    with Session(None, SessionConfig(), _pipeline=RecordingPipeline()) as s:
        feeder = threading.Thread(target=s.feed_audio, args=(np.zeros(44100 * 8, np.float32), 44100))
        feeder.start()
        assert inside.wait(30)
        # the first second is on the timeline already and renders; then the reader waits for more
        got = [s.next_frame(timeout=10) for _ in range(10)]
        assert [f.index for f in got] == list(range(10))
        with pytest.raises(TimeoutError):
            _bounded(lambda: [s.next_frame(timeout=0.05) for _ in range(100)], 10)
        release.set()
        feeder.join(60)
        assert not feeder.is_alive()
        assert max(calls) == 44100  # bounded pieces
