"""Calibration sets: real face crops that set INT8 activation ranges.

Random tensors give ranges no face produces, and parity measured on them hides real drift,
so calibration always uses aligned face crops, preprocessed exactly as at inference:

* a labelled data folder (``manifest.csv``, e.g. ``../shared/data``) given as ``calibration=``
  or through ``$DEEPFAKE_SDK_DATA``: crops spread evenly over its sources, reals and fakes;
* otherwise the packaged public-domain face (NASA's astronaut photo) under deterministic
  augmentations (flip, colour, scale, blur and self-blending), so a fresh install can still
  build an artifact offline. The manifest records which one was used, with its hash.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_ENV = "DEEPFAKE_SDK_DATA"


@dataclass(frozen=True)
class CalibrationSet:
    crops: np.ndarray  # (N, H, W, 3) uint8, aligned and JPEG re-encoded like inference
    source: str  # where the crops came from, for the manifest

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.crops).tobytes()).hexdigest()

    def describe(self) -> dict:
        return {"source": self.source, "size": int(len(self.crops)), "sha256": self.sha256}


def default_data_dir() -> Path | None:
    value = os.environ.get(DATA_ENV)
    if value and (Path(value) / "manifest.csv").is_file():
        return Path(value)
    return None


def calibration_set(source: str | Path | np.ndarray | None, size: int, preprocessing,
                    offset: int = 0) -> CalibrationSet:
    """Resolve ``calibration=``: a crops array, a data folder, or None (env var, then packaged).

    ``offset`` skips that many crops of the same stream, so a verification set drawn with
    ``offset=calibration_size`` never overlaps the calibration set.
    """
    if isinstance(source, np.ndarray):
        return CalibrationSet(source[offset : offset + size], "array")
    folder = Path(source) if source is not None else default_data_dir()
    if folder is not None:
        return from_data_dir(folder, size, preprocessing, offset)
    return packaged(size, preprocessing, seed=1234 + offset)


def from_data_dir(folder: Path, size: int, preprocessing, offset: int = 0) -> CalibrationSet:
    from deepfake_sdk.training.data import build_crops

    crops = build_crops(folder, preprocessing.size, preprocessing.margin)
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(crops.samples):
        by_source.setdefault(s.source, []).append(i)
    # Round-robin over sources, evenly spaced within each, so no single source dominates.
    spaced = [np.array(idx)[np.argsort((np.arange(len(idx)) * 0.618) % 1.0)] for idx in by_source.values()]
    picked: list[int] = []
    for rank in range(max(len(s) for s in spaced)):
        picked += [int(s[rank]) for s in spaced if rank < len(s)]
    picked = sorted(picked[offset : offset + size])
    return CalibrationSet(crops.images[picked], f"data:{folder.name}:{crops.manifest_sha256[:16]}:{offset}+{size}")


def packaged(size: int, preprocessing, seed: int = 1234) -> CalibrationSet:
    from PIL import Image, ImageEnhance, ImageFilter

    from deepfake_sdk.imageio import jpeg_roundtrip
    from deepfake_sdk.paths import package_weights_dir
    from deepfake_sdk.training.sbi import self_blend

    base = Image.open(package_weights_dir() / "calibration_face.jpg").convert("RGB")
    base = base.resize((preprocessing.size, preprocessing.size), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(size):
        img = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else base
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
        img = img.rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR)
        if i % 3 == 0:
            img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
        arr = np.asarray(img)
        if i % 4 == 1:
            arr = self_blend(arr, rng, preprocessing.margin)
        crops.append(np.asarray(jpeg_roundtrip(Image.fromarray(arr), preprocessing.jpeg_quality or 90)))
    return CalibrationSet(np.stack(crops), f"packaged:astronaut-augmented-v1:seed{seed}")
