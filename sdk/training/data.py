"""Development data: the manifest, grouped splits, and a cache of aligned face crops.

Crops of one clip are near-duplicates, so every split is by *group* (source + clip), and the
leave-one-out evaluation holds out whole *domains* (a source family with both labels). Every
crop is JPEG re-encoded (quality 90) so the model cannot learn the PNG-fake / JPEG-real cue.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import jsonio
from ..artifact import atomic_path, sha256_file
from ..faces import FacePipeline
from ..imageio import jpeg_roundtrip, load_image
from ..paths import cache_dir

JPEG_QUALITY = 90
# Source families that hold both labels; the rest are real-only and always train.
DOMAINS = {
    "deepfacelive_photos": "deepfacelive",
    "deepfacelive_swaps": "deepfacelive",
    "dfdc_crops_aaronchong888": "dfdc",
    "dfdc_video_aaronchong888": "dfdc",
}


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the data folder
    label: int  # 1 = fake
    source: str
    group: str  # source + clip/identity: near-duplicates share a group

    @property
    def domain(self) -> str:
        return DOMAINS.get(self.source, "real_only")


def clip_of(filename: str) -> str:
    """Clip or identity a file belongs to: frames ``X_f0123`` and DFDC crops ``id-009-00`` share it."""
    stem = Path(filename).stem
    stem = re.sub(r"_f\d+$", "", stem)
    return stem.split("-")[0]


def read_manifest(manifest: Path) -> list[Sample]:
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        Sample(r["path"], int(r["label"] == "fake"), r["source"], f"{r['source']}/{clip_of(r['path'])}")
        for r in rows
    ]


@dataclass(frozen=True)
class CropSet:
    """Aligned 224x224 JPEG-q90 face crops of a manifest, as one uint8 array."""

    samples: list[Sample]
    images: np.ndarray  # (N, 224, 224, 3) uint8
    manifest_sha256: str
    skipped: list[str]  # images where no face was found
    faces: list[dict] = field(default_factory=list)  # per sample: image sha256, box, 5 landmarks

    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])

    def where(self, keep) -> "CropSet":
        idx = [i for i, s in enumerate(self.samples) if keep(s)]
        return CropSet([self.samples[i] for i in idx], self.images[idx], self.manifest_sha256, self.skipped,
                       [self.faces[i] for i in idx] if self.faces else [])


def build_crops(data_dir: Path, size: int = 224, margin: float = 1.3) -> CropSet:
    """Detect, align and JPEG-encode every manifest image once; cached by manifest hash."""
    manifest = Path(data_dir) / "manifest.csv"
    digest = sha256_file(manifest)
    folder = cache_dir() / "facecrops" / f"{digest[:16]}_{size}_{margin}_v2"
    if not (folder / "index.json").exists():
        _write_crops(Path(data_dir), read_manifest(manifest), folder, size, margin)
    index = json.loads((folder / "index.json").read_text())
    samples = [Sample(**s) for s in index["samples"]]
    images = np.load(folder / "crops.npy")
    return CropSet(samples, images, digest, index["skipped"], index["faces"])


def _write_crops(data_dir: Path, samples: list[Sample], folder: Path, size: int, margin: float) -> None:
    faces = FacePipeline(size=size, margin=margin)
    kept, crops, skipped, where = [], [], [], []
    for sample in tqdm(samples, desc="face crops", unit="img"):
        found = faces.faces(load_image(data_dir / sample.path))
        if not found:
            skipped.append(sample.path)
            continue
        kept.append(sample)
        crops.append(np.asarray(jpeg_roundtrip(found[0].crop, JPEG_QUALITY)))
        where.append({"sha256": sha256_file(data_dir / sample.path), "box": [round(float(v), 2) for v in found[0].box],
                      "landmarks": np.asarray(found[0].landmarks, float).round(3).tolist()})
    with atomic_path(folder, is_dir=True) as tmp:
        np.save(tmp / "crops.npy", np.stack(crops))
        index = {"samples": [asdict(s) for s in kept], "skipped": skipped, "faces": where}
        (tmp / "index.json").write_text(jsonio.dumps(index, indent=1))


HOLDOUT_MANIFEST = "manifest_extra.csv"


def holdout_folder(data_dir: Path, per_source: int = 16, manifest: str = HOLDOUT_MANIFEST) -> Path:
    """A data folder (in the cache) of up to ``per_source`` images from each source of
    ``data_dir/manifest``, spread evenly over each source's rows (so over its clips/groups).

    ../shared/data's ``manifest_extra.csv`` shares no source with ``manifest.csv``, from which
    the shipped calibration profile was recorded: release gates and numerics tables score these
    faces, never the calibration's own sources. Paths are absolute; the folder is rebuilt only
    when the source manifest changes.
    """
    data_dir = Path(data_dir).resolve()
    src = data_dir / manifest
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    picked = []
    for source in sorted(by_source):
        group = by_source[source]
        step = max(1, len(group) // per_source)
        picked += [{**r, "path": str(data_dir / r["path"])} for r in group[::step][:per_source]]
    folder = cache_dir() / "holdout" / f"{sha256_file(src)[:16]}-{per_source}"
    if not (folder / "manifest.csv").is_file():
        with atomic_path(folder, is_dir=True) as tmp:
            with open(tmp / "manifest.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(picked)
    return folder
