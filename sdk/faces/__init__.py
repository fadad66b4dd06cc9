"""Faces: detect (MTCNN), choose (largest or all), align to GenD's template, crop to 224."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .align import align_face
from .mtcnn import MTCNN, Detection

__all__ = ["Face", "FacePipeline", "Detection", "align_face"]

DETECT_MIN_SIDE = 160  # small images are upscaled to this short side before detection
TIGHT_CROP_PAD = 0.5  # border added when an image may already be a tight face crop


@dataclass(frozen=True)
class Face:
    """A detected face: box in the input's pixels, landmarks, detector confidence, aligned crop."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray = field(repr=False)
    crop: Image.Image = field(repr=False)


@functools.lru_cache(maxsize=1)
def _detector() -> MTCNN:
    return MTCNN()


class FacePipeline:
    """Find faces and return aligned crops.

    A whole photo is searched directly. When nothing is found, the image may be a tight face
    crop (the face fills the frame, so MTCNN's boxes would spill outside it): we search again on
    a padded copy before concluding there is no face.
    """

    def __init__(self, size: int = 224, margin: float = 1.3, min_confidence: float = 0.9):
        self.size = size
        self.margin = margin
        self.min_confidence = min_confidence

    def detect(self, image: Image.Image) -> list[Detection]:
        found = self._detect_scaled(image)
        if not found:
            found = self._detect_padded(image)
        return [d for d in found if d.confidence >= self.min_confidence]

    def faces(self, image: Image.Image, all_faces: bool = False) -> list[Face]:
        """Aligned faces, largest first; only the largest unless ``all_faces``."""
        found = sorted(self.detect(image), key=lambda d: d.area, reverse=True)
        if not all_faces:
            found = found[:1]
        return [
            Face(d.box, d.confidence, d.landmarks, align_face(image, d.landmarks, self.size, self.margin))
            for d in found
        ]

    def _detect_scaled(self, image: Image.Image) -> list[Detection]:
        scale = max(1.0, DETECT_MIN_SIDE / min(image.size))
        work = image
        if scale > 1.0:
            work = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        return [_rescale(d, 1.0 / scale, 0.0, 0.0) for d in _detector().detect(np.asarray(work))]

    def _detect_padded(self, image: Image.Image) -> list[Detection]:
        pad_x, pad_y = round(image.width * TIGHT_CROP_PAD), round(image.height * TIGHT_CROP_PAD)
        canvas = Image.new("RGB", (image.width + 2 * pad_x, image.height + 2 * pad_y), (127, 127, 127))
        canvas.paste(image, (pad_x, pad_y))
        return [_rescale(d, 1.0, -pad_x, -pad_y) for d in self._detect_scaled(canvas)]


def _rescale(d: Detection, scale: float, dx: float, dy: float) -> Detection:
    x1, y1, x2, y2 = d.box
    box = (x1 * scale + dx, y1 * scale + dy, x2 * scale + dx, y2 * scale + dy)
    return Detection(box, d.confidence, d.landmarks * scale + np.array([dx, dy]))
