"""Development data: the manifest, grouped splits, and a cache of aligned face crops.

Crops of one clip are near-duplicates, so every split is by *group* (source + clip, or the
manifest's ``group=``), and held-out evaluation leaves out whole sources and manipulation
families (``training.folds``). Every crop is JPEG re-encoded (quality 90) so the model cannot
learn the PNG-fake / JPEG-real cue.
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


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the data folder
    label: int  # 1 = fake
    source: str
    group: str  # source + clip/identity: near-duplicates share a group
    family: str = ""  # kind of fake (faceswap, reenactment, face_editing, gan_full_synthesis, diffusion); "real"


def clip_of(filename: str) -> str:
    """Clip or identity a file belongs to: frames ``X_f0123`` and DFDC crops ``id-009-00`` share it."""
    stem = Path(filename).stem
    stem = re.sub(r"_f\d+$", "", stem)
    return stem.split("-")[0]


def group_of(row: dict) -> str:
    """``source/clip``: the ``group=`` the manifest's notes give (clip, grid or identity), else the
    clip read off the file name."""
    found = re.search(r"group=([^;,\s\"]+)", row.get("notes") or "")
    return f"{row['source']}/{found.group(1) if found else clip_of(row['path'])}"


def family_of(row: dict) -> str:
    """The manipulation family of a fake (the ``manipulation`` column up to its colon); "real"."""
    if row["label"] != "fake":
        return "real"
    return (row.get("manipulation") or "unknown").split(":")[0].strip() or "unknown"


def read_manifest(manifest: Path) -> list[Sample]:
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [Sample(r["path"], int(r["label"] == "fake"), r["source"], group_of(r), family_of(r)) for r in rows]


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

    @classmethod
    def joined(cls, parts: list["CropSet"]) -> "CropSet":
        """Several manifests' crops as one set (their hashes joined)."""
        if len(parts) == 1:
            return parts[0]
        return cls([s for p in parts for s in p.samples], np.concatenate([p.images for p in parts]),
                   "+".join(p.manifest_sha256[:16] for p in parts), [k for p in parts for k in p.skipped],
                   [f for p in parts for f in p.faces])

    def where(self, keep) -> "CropSet":
        idx = [i for i, s in enumerate(self.samples) if keep(s)]
        return CropSet([self.samples[i] for i in idx], self.images[idx], self.manifest_sha256, self.skipped,
                       [self.faces[i] for i in idx] if self.faces else [])


def build_crops(data_dir: Path, size: int = 224, margin: float = 1.3, manifest: str = "manifest.csv") -> CropSet:
    """Detect, align and JPEG-encode every image of ``data_dir/manifest`` once; cached by the
    manifest's hash (``manifest_extra.csv`` and ``manifest_generated.csv`` have their own)."""
    manifest = Path(data_dir) / manifest
    digest = sha256_file(manifest)
    folder = cache_dir() / "facecrops" / f"{digest[:16]}_{size}_{margin}_v3"
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


@dataclass(frozen=True)
class SpreadCrops:
    images: np.ndarray
    samples: list
    order: list[int]  # indices, round-robin over sources, evenly spaced within each
    manifest_sha256: str


def spread_over_sources(folder: Path, preprocessing, exclude: tuple[str, ...] = (),
                        include: tuple[str, ...] | None = None) -> SpreadCrops:
    crops = build_crops(folder, preprocessing.size, preprocessing.margin)
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(crops.samples):
        if s.source not in exclude and (include is None or s.source in include):
            by_source.setdefault(s.source, []).append(i)
    spaced = [np.array(idx)[np.argsort((np.arange(len(idx)) * 0.618) % 1.0)] for idx in by_source.values()]
    order: list[int] = []
    for rank in range(max((len(s) for s in spaced), default=0)):
        order += [int(s[rank]) for s in spaced if rank < len(s)]
    return SpreadCrops(crops.images, crops.samples, order, crops.manifest_sha256)


HOLDOUT_MANIFEST = "manifest_extra.csv"
TOP_UP_MANIFEST = "manifest_generated.csv"
# The release set: 32 faces per source of manifest_extra.csv, topped up with 4 per source of
# manifest_generated.csv (GAN and diffusion faces the extra set barely has): 619 rows, 615
# faces after the face detector, so one face is under 0.2% of the set (issue 31).
RELEASE_PER_SOURCE, RELEASE_TOP_UP_PER_SOURCE = 32, 4


def release_folder(data_dir: Path) -> Path:
    """The release gate's faces (``deepfake-sdk numerics``, CI's slow gate): a cached data folder
    of :data:`RELEASE_PER_SOURCE` images per source of ``manifest_extra.csv`` plus
    :data:`RELEASE_TOP_UP_PER_SOURCE` per source of ``manifest_generated.csv`` where it exists.

    Neither manifest shares a source with ``manifest.csv``, from which every calibration profile
    is recorded, nor with the validation manifest, which nothing is gated on. Both are training
    data: the gate measures how faithfully an artifact reproduces its float model, not accuracy,
    so faces a head trained on serve it as well as any (the numerics tables say so)."""
    data_dir = Path(data_dir).resolve()
    parts = [(HOLDOUT_MANIFEST, RELEASE_PER_SOURCE), (TOP_UP_MANIFEST, RELEASE_TOP_UP_PER_SOURCE)]
    return holdout_folder(data_dir, parts=[(m, n) for m, n in parts if (data_dir / m).is_file()])


def holdout_folder(data_dir: Path, per_source: int = 16, manifest: str = HOLDOUT_MANIFEST,
                   parts: list[tuple[str, int]] | None = None) -> Path:
    """A data folder (in the cache) of up to ``per_source`` images from each source of
    ``data_dir/manifest`` (or of each ``(manifest, per_source)`` of ``parts``), spread evenly
    over each source's rows (so over its clips/groups).

    ../shared/data's ``manifest_extra.csv`` shares no source with ``manifest.csv``, from which
    the shipped calibration profile was recorded: release gates and numerics tables score these
    faces, never the calibration's own sources. Paths are absolute; the folder is rebuilt only
    when a source manifest changes (its crops are then cached once, keyed by that manifest).
    """
    data_dir = Path(data_dir).resolve()
    parts = parts or [(manifest, per_source)]
    picked, fieldnames, keys = [], None, []
    for name, per in parts:
        src = data_dir / name
        with open(src, newline="") as fh:
            rows = list(csv.DictReader(fh))
        fieldnames = fieldnames or list(rows[0])
        picked += _spread_per_source(rows, per, data_dir)
        keys.append(f"{sha256_file(src)[:16]}-{per}")
    folder = cache_dir() / "holdout" / "+".join(keys)
    if not (folder / "manifest.csv").is_file():
        with atomic_path(folder, is_dir=True) as tmp:
            with open(tmp / "manifest.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(picked)
    return folder


def _spread_per_source(rows: list[dict], per_source: int, data_dir: Path) -> list[dict]:
    """Up to ``per_source`` rows of each source, evenly spaced over its rows, paths made absolute."""
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    picked = []
    for source in sorted(by_source):
        group = by_source[source]
        step = max(1, len(group) // per_source)
        picked += [{**r, "path": str(data_dir / r["path"])} for r in group[::step][:per_source]]
    return picked
