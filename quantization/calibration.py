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
    crops, _ = packaged_faces(size, preprocessing, seed)
    return CalibrationSet(crops, f"packaged:astronaut-augmented-v1:seed{seed}")


def packaged_faces(size: int, preprocessing, seed: int = 1234, fake_every: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``size`` augmented crops of the packaged face and their labels (1 = self-blended fake)."""
    from PIL import Image, ImageEnhance, ImageFilter

    from deepfake_sdk.imageio import jpeg_roundtrip
    from deepfake_sdk.paths import package_weights_dir
    from deepfake_sdk.training.sbi import self_blend

    base = Image.open(package_weights_dir() / "calibration_face.jpg").convert("RGB")
    base = base.resize((preprocessing.size, preprocessing.size), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for i in range(size):
        img = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else base
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
        img = img.rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR)
        if i % 3 == 0:
            img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
        arr = np.asarray(img)
        fake = i % fake_every == 1
        if fake:
            arr = self_blend(arr, rng, preprocessing.margin)
        crops.append(np.asarray(jpeg_roundtrip(Image.fromarray(arr), preprocessing.jpeg_quality or 90)))
        labels.append(int(fake))
    return np.stack(crops), np.array(labels)


def write_packaged_set(out: str | Path, count: int, preprocessing, seed: int = 4321) -> Path:
    """A labelled data folder (images + ``manifest.csv``) built from the packaged face only.

    For machines without a real data set: tests and the sample CI reference use it so that
    ``reference build`` / ``verify`` run end to end anywhere. Half the faces are self-blended
    fakes. It checks plumbing and numeric drift, not detection quality.
    """
    import csv

    from PIL import Image

    from deepfake_sdk.artifact import atomic_path

    crops, labels = packaged_faces(count, preprocessing, seed, fake_every=2)
    out = Path(out)
    with atomic_path(out, is_dir=True) as tmp:
        rows = []
        for i, (crop, label) in enumerate(zip(crops, labels)):
            name = f"images/{'fake' if label else 'real'}/face_{i:03d}.jpg"
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(tmp / name, quality=95)
            rows.append({"path": name, "label": "fake" if label else "real", "source": f"packaged_{'sbi' if label else 'photo'}"})
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "label", "source"])
            writer.writeheader()
            writer.writerows(rows)
    return out
