"""Calibration and gate sets: the face crops an INT8 build learns from and is checked on.

Random tensors give ranges no face produces, and parity measured on them hides real drift, so
both sets are aligned face crops, preprocessed exactly as at inference, and **never share a
source**: parity on faces from the calibration's own sources overstates it (issue 9).

* ``calibration=None`` (the default, the same on every machine whatever data it has): SmoothQuant
  uses the maxima recorded from real faces and shipped with the weights
  (``quantization.profile``); the gate faces are deterministic augmentations of the packaged
  public-domain photo (NASA's astronaut), whose source the recording left out. Forward passes
  that need input (PT2E tracing; Core ML's simulated static ranges) use more augmentations of
  the same photo, with other seeds.
* ``calibration=<data folder>`` (``manifest.csv``): its sources are split, by a hash of their
  names, into gate sources and calibration sources; with a single source, by ``group=`` in the
  notes, else by image.
* ``calibration=<array>`` of crops: the first ``size`` calibrate, the next ones gate.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from ..artifact import atomic_path
from ..imageio import jpeg_roundtrip
from ..paths import package_weights_dir
from ..training.data import read_manifest, spread_over_sources
from ..training.sbi import self_blend
from .profile import PACKAGED_PHOTO_SOURCES, load_profile

DATA_ENV = "DEEPFAKE_SDK_DATA"  # where tests and benchmarks find real faces; not a build input


@dataclass(frozen=True)
class CalibrationSet:
    crops: np.ndarray  # (N, H, W, 3) uint8, aligned and JPEG re-encoded like inference
    source: str  # where the crops came from, for the manifest
    sources: tuple[str, ...] = ()  # the data sources (datasets, photos) the crops belong to
    smooth_maxima: dict | None = field(default=None, repr=False)  # recorded SmoothQuant maxima
    profile: dict | None = None  # description of the recorded profile, when one is used

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.crops).tobytes())
        if self.profile:
            digest.update(repr(sorted(self.profile.items())).encode())
        return digest.hexdigest()

    def faces_used(self) -> tuple[str, ...]:
        """Sources whose faces shaped the quantization: the recorded profile's when one is used
        (the crops then only drive forward passes), else the crops' own."""
        if self.smooth_maxima is not None and self.profile:
            return tuple(self.profile["sources"])
        return self.sources

    def describe(self) -> dict:
        out = {"source": self.source, "size": int(len(self.crops)), "sha256": self.sha256,
               "sources": list(self.sources)}
        if self.profile:
            out["smoothquant_maxima"] = self.profile
        return out


@dataclass(frozen=True)
class BuildSets:
    """What an INT8 build calibrates on and what its build gate checks it on."""

    calibration: CalibrationSet
    gate: CalibrationSet

    def shared_sources(self) -> list[str]:
        """Sources both sets draw on: empty whenever a recorded profile or a data folder is used;
        a model shipped without a profile (tests' tiny models) calibrates on its gate photo."""
        return sorted(set(self.gate.sources) & set(self.calibration.faces_used()))

    def describe_gate(self) -> dict:
        return {**self.gate.describe(), "shared_sources_with_calibration": self.shared_sources()}


def default_data_dir() -> Path | None:
    value = os.environ.get(DATA_ENV)
    if value and (Path(value) / "manifest.csv").is_file():
        return Path(value)
    return None


def build_sets(source, calibration_size: int, gate_size: int, preprocessing, weights: Path | None = None) -> BuildSets:
    """Resolve ``calibration=`` into disjoint calibration and gate sets (see the module doc)."""
    if isinstance(source, np.ndarray):
        return BuildSets(CalibrationSet(source[:calibration_size], "array", ("array:calibration",)),
                         CalibrationSet(source[calibration_size : calibration_size + gate_size], "array",
                                        ("array:gate",)))
    if source is not None:
        return from_data_dir(Path(source), calibration_size, gate_size, preprocessing)
    return packaged_sets(calibration_size, gate_size, preprocessing, weights)


def calibration_set(source, size: int, preprocessing, weights: Path | None = None) -> CalibrationSet:
    """The calibration half of :func:`build_sets` (``export`` without a build gate)."""
    return build_sets(source, size, 0, preprocessing, weights).calibration


def packaged_sets(calibration_size: int, gate_size: int, preprocessing, weights: Path | None) -> BuildSets:
    profile = load_profile(weights)
    photo = ("packaged:astronaut",)
    calib = packaged(calibration_size, preprocessing, seed=1234)
    if profile is not None:
        calib = CalibrationSet(calib.crops, calib.source + "+recorded-maxima", photo,
                               smooth_maxima=profile.maxima, profile=profile.describe())
    gate = packaged(gate_size, preprocessing, seed=1234 + calibration_size)
    gate_sources = photo + (PACKAGED_PHOTO_SOURCES if profile is not None else ())
    return BuildSets(calib, CalibrationSet(gate.crops, gate.source, gate_sources))


def split_sources(counts: dict[str, int], gate_size: int) -> tuple[set[str], set[str]]:
    """Deterministic split of sources into (calibration, gate): sources join the gate in the
    order of a hash of their names until it holds ``gate_size`` images, leaving at least one
    source (and half the images) to calibrate. A gate of a dozen faces would let one
    near-threshold face fail a build (1/12 flips)."""
    ranked = sorted(counts, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    gate: set[str] = set()
    total, held = sum(counts.values()), 0
    for source in ranked[:-1]:
        if held >= gate_size or held + counts[source] > total / 2 and gate:
            continue
        gate.add(source)
        held += counts[source]
    return set(ranked) - gate, gate


def from_data_dir(folder: Path, calibration_size: int, gate_size: int, preprocessing) -> BuildSets:
    counts: dict[str, int] = {}
    for sample in read_manifest(folder / "manifest.csv"):
        counts[sample.source] = counts.get(sample.source, 0) + 1
    sources = sorted(counts)
    calib_sources, gate_sources = split_sources(counts, gate_size)
    tag = f"data:{folder.name}"
    if gate_sources:
        calib = spread_over_sources(folder, preprocessing, include=tuple(calib_sources))
        gate = spread_over_sources(folder, preprocessing, include=tuple(gate_sources))
        c_idx, g_idx = calib.order[:calibration_size], gate.order[:gate_size]
    else:  # one source: split its images in two halves (said in the manifest)
        calib = gate = spread_over_sources(folder, preprocessing)
        half = len(calib.order) // 2
        c_idx, g_idx = calib.order[:half][:calibration_size], calib.order[half:][:gate_size]
        calib_sources, gate_sources = {f"{sources[0]}:first-half"}, {f"{sources[0]}:second-half"}
    digest = calib.manifest_sha256[:16]
    return BuildSets(
        CalibrationSet(calib.images[sorted(c_idx)], f"{tag}:{digest}:calibration-sources", tuple(sorted(calib_sources))),
        CalibrationSet(gate.images[sorted(g_idx)], f"{tag}:{digest}:gate-sources", tuple(sorted(gate_sources))),
    )


def packaged(size: int, preprocessing, seed: int = 1234) -> CalibrationSet:
    crops, _ = packaged_faces(size, preprocessing, seed)
    return CalibrationSet(crops, f"packaged:astronaut-augmented-v1:seed{seed}", ("packaged:astronaut",))


def packaged_faces(size: int, preprocessing, seed: int = 1234, fake_every: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``size`` augmented crops of the packaged face and their labels (1 = self-blended fake)."""
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
    if not crops:
        return np.zeros((0, preprocessing.size, preprocessing.size, 3), np.uint8), np.zeros(0, int)
    return np.stack(crops), np.array(labels)


def write_packaged_set(out: str | Path, count: int, preprocessing, seed: int = 4321) -> Path:
    """A labelled data folder (images + ``manifest.csv``) built from the packaged face only.

    For machines without a real data set: tests and the sample CI reference use it so that
    ``reference build`` / ``verify`` run end to end anywhere. Half the faces are self-blended
    fakes. It checks plumbing and numeric drift, not detection quality.
    """
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
