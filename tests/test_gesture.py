"""The Session's gestures: the generated body offsets smoothed (causally, across calls) and the
generated finger points dropped, face and head untouched."""
import numpy as np
import pytest

from chatanyone.motion.gesture import GestureSmoother
from chatanyone.spec.motion_layout import MotionFrames


def _frames(start, body, rng):
    n = body.shape[0]
    return MotionFrames(start, rng.normal(size=(n, 6)).astype(np.float32),
                        rng.normal(size=(n, 10)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32),
                        body.astype(np.float32), rng.normal(size=(n, 2, 21, 2)).astype(np.float32),
                        np.ones((n, 2), np.float32))


def test_noise_is_smoothed_and_a_held_pose_is_reached():
    rng = np.random.default_rng(0)
    n = 400
    slow = 0.05 * np.sin(np.arange(n) / 25.0 * 2 * np.pi * 0.5)        # a 2 s gesture
    body = np.zeros((n, 8, 2))
    body[:, 4, 1] = slow + rng.normal(0, 0.03, n)                        # plus frame-to-frame jitter
    f = _frames(0, body, rng)
    g = GestureSmoother(alpha=0.25, gain=1.0)
    out = g(f)
    w, raw = out.body[:, 4, 1], body[:, 4, 1]
    step = lambda x: np.abs(np.diff(x)).mean()                           # noqa: E731
    assert step(w) < 0.25 * step(raw)                                    # the jitter is gone
    lagged = max(np.corrcoef(w[50:], slow[50 - k:n - k])[0, 1] for k in range(13))
    assert lagged > 0.9                                                  # the gesture stays, lagged
    # face, head and eyes untouched; generated hands dropped
    for k in ("head", "exp", "eye"):
        np.testing.assert_array_equal(getattr(out, k), getattr(f, k))
    assert not out.hands_ok.any() and not out.hands.any()
    assert out.start == f.start and len(out) == n
    # a pose held long enough is reached, scaled by the gain
    held = np.zeros((100, 8, 2))
    held[:, 2] = [0.02, -0.04]
    o2 = GestureSmoother(gain=1.5)(_frames(0, held, rng))
    np.testing.assert_allclose(o2.body[-1, 2], [0.03, -0.06], atol=1e-6)


def test_calls_continue_the_stream_and_reset_forgets_it():
    rng = np.random.default_rng(1)
    body = rng.normal(0, 0.03, (60, 8, 2))
    f = _frames(0, body, rng)
    whole = GestureSmoother()(f).body
    g = GestureSmoother()
    parts = np.concatenate([g(f[0:17]).body, g(f[17:40]).body, g(f[40:60]).body])
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    g.reset()
    np.testing.assert_allclose(g(f[40:60]).body[0], 1.5 * body[40], atol=1e-6)   # starts afresh
    kept = GestureSmoother(keep_hands=True)(f)
    np.testing.assert_array_equal(kept.hands, f.hands)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        GestureSmoother(alpha=0)
    with pytest.raises(ValueError, match="gain"):
        GestureSmoother(gain=-1)


@pytest.mark.time_limit(180)
def test_the_session_pipeline_releases_smooth_gestures_without_finger_points():
    """The Session's Pipeline on 3 s of the demo speech: no generated finger points reach the
    renderer, and the wrists move smoothly (the raw model steps about 0.034 crop units per frame)."""
    import chatanyone as ca
    from chatanyone.assets import default_avatar_image, demo_speech
    from chatanyone.pipeline import Pipeline
    p = Pipeline(ca.Avatar.prepare(default_avatar_image()), ca.SessionConfig(seed=0))
    pcm, sr = demo_speech()
    assert sr == 16000
    m = p.motion(np.asarray(pcm[:3 * sr], np.float32), final=True)
    assert m is not None and len(m) >= 70
    assert not np.asarray(m.hands_ok).any()
    w = np.asarray(m.body)[:, 4:6]
    assert np.linalg.norm(np.diff(w, axis=0), axis=-1).mean() < 0.015
    assert np.asarray(m.body).std(0).max() > 0            # it still moves
