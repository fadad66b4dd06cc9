"""From aligned face crop to model input: the one place mean/std and JPEG re-encoding live."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .imageio import jpeg_roundtrip
from .zoo import Preprocessing


def prepare_crop(crop: Image.Image, pp: Preprocessing) -> np.ndarray:
    """Aligned crop -> uint8 ``(H, W, 3)`` exactly as the model was trained to see it."""
    if crop.size != (pp.size, pp.size):
        crop = crop.resize((pp.size, pp.size), Image.Resampling.BICUBIC)
    if pp.jpeg_quality:
        crop = jpeg_roundtrip(crop, pp.jpeg_quality)
    return np.asarray(crop, dtype=np.uint8)


def to_batch(crops: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> normalised float32 ``(N, 3, H, W)``."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(pp.mean, np.float32)[None, :, None, None]
    std = np.asarray(pp.std, np.float32)[None, :, None, None]
    return np.ascontiguousarray((x - mean) / std)
