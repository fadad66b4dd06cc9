"""Similarity alignment of a face to GenD's 5-point template, with context margin.

GenD crops faces so that eyes, nose and mouth corners land on fixed fractions of the crop,
then zooms out by ``margin`` (1.3) to keep some context around the face. The warp is a
similarity (rotation + uniform scale + shift), fitted by least squares (Umeyama), and applied
with PIL so no OpenCV is needed.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

# Fractions of the crop, before the margin: left eye, right eye, nose, mouth left, mouth right.
GEND_TEMPLATE = np.array(
    [[0.34, 0.46], [0.66, 0.46], [0.50, 0.64], [0.37, 0.82], [0.63, 0.82]], dtype=np.float64
)


def template_points(size: int, margin: float = 1.3, template: np.ndarray = GEND_TEMPLATE) -> np.ndarray:
    """Template landmarks in pixels of a ``size`` crop, shrunk toward the centre by ``margin``."""
    return (template + (margin - 1.0) / 2.0) / margin * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M of the similarity mapping ``src`` points onto ``dst`` (least squares)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var if var > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def warp(image: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """Apply a 2x3 forward matrix (image -> crop) and return a ``size`` x ``size`` crop."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(full)[:2].ravel()  # PIL wants crop -> image coefficients
    return image.transform((size, size), Image.Transform.AFFINE, tuple(inverse), Image.Resampling.BILINEAR)


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = 224, margin: float = 1.3) -> Image.Image:
    """Crop ``image`` so the 5 ``landmarks`` sit on GenD's template in a ``size`` crop."""
    matrix = similarity_transform(landmarks, template_points(size, margin))
    return warp(image, matrix, size)
