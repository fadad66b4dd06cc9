"""What a detector trains on: aligned crops of every manifest, degraded copies of some, and
self-blends of the real ones, weighted so both labels (and the scarce generated fakes) count.

Shared by every family's recipe (GenD's training, GenD-Lite's distillation, LFM, GenDF): the
same universe of items, the same per-source cap, the same augmentation, so their model cards
compare like with like.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from ..imageio import jpeg_roundtrip
from ..zoo import Preprocessing
from .data import JPEG_QUALITY, CropSet, Sample, build_crops
from .sbi import self_blend

MANIFESTS = ("manifest.csv", "manifest_extra.csv", "manifest_generated.csv")
GENERATED_FAMILIES = ("gan_full_synthesis", "diffusion")


def load_crops(data_dir: Path, pp: Preprocessing, manifests: tuple[str, ...] = MANIFESTS) -> CropSet:
    """Aligned crops of every manifest present in ``data_dir``, as one set."""
    return CropSet.joined([build_crops(data_dir, pp.size, pp.margin, manifest=m)
                           for m in manifests if (Path(data_dir) / m).is_file()])


def capped(samples: list[Sample], idx: np.ndarray, cap: int | None) -> np.ndarray:
    """``idx`` with at most ``cap`` samples per (source, label), spread evenly over the rows."""
    if cap is None:
        return idx
    by: dict[tuple[str, int], list[int]] = {}
    for i in idx:
        by.setdefault((samples[i].source, samples[i].label), []).append(int(i))
    out = []
    for rows in by.values():
        step = max(1.0, len(rows) / cap)
        out += [rows[int(k * step)] for k in range(min(cap, len(rows)))]
    return np.array(sorted(out), dtype=int)


# Items.kind: a clean crop, a degraded copy of one (trains instead of it), a self-blend, an
# augmented view (trains beside its crop: a distilled student's extra faces, labelled by its teacher)
CROP, VIEW, BLEND, AUGMENTED = 0, 1, 2, 3


@dataclass(frozen=True)
class Items:
    """What training sees: crops (by sample index), degraded copies of some, self-blends of real
    crops and, where a recipe asks (``cfg.views_per_crop``), augmented views of every crop.
    Clean crops are also what a fold scores; a crop with a degraded copy trains as that copy."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # 1 = fake (dataset fakes and self-blends)
    weights: np.ndarray  # per item, labels balanced
    origin: np.ndarray  # sample index the item came from
    kind: np.ndarray  # CROP, VIEW, BLEND or AUGMENTED
    # With ``items_for(..., masks=True)``: each self-blend's blending mask at half the crop's side
    # (uint8, 255 = fully the altered copy), zero for every other item; else None.
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def training(self) -> np.ndarray:
        """Indices of the items that train: blends, views, augmented views, and crops that have
        no degraded view."""
        viewed = set(self.origin[self.kind == VIEW].tolist())
        crop_trains = (self.kind == CROP) & ~np.isin(self.origin, list(viewed))
        return np.flatnonzero(crop_trains | (self.kind != CROP))


def items_for(crops: CropSet, idx: np.ndarray, cfg, rng: np.random.Generator, masks: bool = False) -> Items:
    """The crops ``idx``, a degraded copy of a ``cfg.degrade`` share of them, and
    ``cfg.sbi_per_real`` self-blends of each real one (degraded at the same rate), weighted;
    with ``masks``, the self-blends' masks too (the same random draws either way)."""
    labels = crops.labels()[idx]
    reals = idx[labels == 0]
    viewed = idx[rng.random(len(idx)) < cfg.degrade]
    views = [degraded(crops.images[i], rng) for i in viewed]
    drawn = [_self_blended(crops.images[i], rng, cfg.degrade) for _ in range(cfg.sbi_per_real) for i in reals]
    blends = [fake for fake, _ in drawn]
    per_crop = getattr(cfg, "views_per_crop", 0)  # drawn last: recipes without views keep their draws
    augmentations = [augmented(crops.images[i], rng) for _ in range(per_crop) for i in idx]
    images = np.concatenate([crops.images[idx], *(np.stack(part) for part in (views, blends, augmentations) if part)])
    origin = np.concatenate([idx, viewed, np.tile(reals, cfg.sbi_per_real), np.tile(idx, per_crop)]).astype(int)
    y = np.concatenate([labels, crops.labels()[viewed], np.ones(len(blends)), np.tile(labels, per_crop)]).astype(np.int64)
    kind = np.repeat([CROP, VIEW, BLEND, AUGMENTED], [len(idx), len(views), len(blends), len(augmentations)])
    mask_array = None
    if masks:
        side = crops.images.shape[1] // 2
        mask_array = np.zeros((len(y), side, side), np.uint8)
        for row, (_, mask) in zip(np.flatnonzero(kind == BLEND), drawn):
            mask_array[row] = np.asarray(Image.fromarray(mask).resize((side, side), Image.Resampling.BOX))
    return Items(images, y, item_weights(crops.samples, origin, y, cfg), origin, kind, mask_array)


def _self_blended(crop: np.ndarray, rng: np.random.Generator, degrade: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A self-blend of ``crop`` (JPEG re-encoded, sometimes degraded) and its mask (uint8 HxW)."""
    fake, mask = self_blend(crop, rng, return_mask=True)
    fake = np.asarray(jpeg_roundtrip(Image.fromarray(fake), JPEG_QUALITY))
    mask = np.clip(mask[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)
    return (degraded(fake, rng) if rng.random() < degrade else fake), mask


def degraded(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A lower-quality copy of a crop: downscaled (to 30-100%) and back, re-encoded at JPEG
    quality 40-95, sometimes greyscale. Applied alike to reals and fakes, it keeps image quality
    from telling them apart (generated fakes are clean, many real photos are not)."""
    img = Image.fromarray(crop)
    side = max(16, int(round(img.width * rng.uniform(0.3, 1.0))))
    img = img.resize((side, side), Image.Resampling.BILINEAR).resize(img.size, Image.Resampling.BILINEAR)
    if rng.random() < 0.15:
        img = img.convert("L").convert("RGB")
    return np.asarray(jpeg_roundtrip(img, int(rng.integers(40, 96))))


def augmented(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another view of the same face, labelled by a teacher (so any change is allowed that a
    photo of it could show): mirrored half the time, scaled 0.9-1.1 and shifted up to 6% of the
    side, brightness/contrast/saturation within 20%, blurred a third of the time, re-encoded at
    JPEG quality 60-95."""
    img = Image.fromarray(crop)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    side = img.width
    scale = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-0.06, 0.06, 2) * side
    centre = (side - 1) / 2
    # Output pixel (x, y) reads input (x / scale + c, y / scale + f): a zoom about the centre, shifted.
    coeffs = (1 / scale, 0, centre - centre / scale + dx, 0, 1 / scale, centre - centre / scale + dy)
    img = img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 1 / 3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return np.asarray(jpeg_roundtrip(img, int(rng.integers(60, 96))))


def item_weights(samples: list[Sample], origin: np.ndarray, labels: np.ndarray, cfg) -> np.ndarray:
    """Generated-face fakes x ``generated_weight``; then reals and fakes rescaled to equal total
    weight, mean 1."""
    w = np.ones(len(labels))
    generated = np.array([samples[o].family in GENERATED_FAMILIES for o in origin], dtype=bool) & (labels == 1)
    w[generated] *= cfg.generated_weight
    return balanced(w, labels)


def weighted_for(items: Items, idx: np.ndarray) -> Items:
    """``items`` whose weights are re-balanced over the items ``idx`` that train (0 elsewhere)."""
    weights = np.zeros(len(items))
    weights[idx] = balanced(items.weights[idx], items.labels[idx])
    return replace(items, weights=weights)


def balanced(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``weights`` rescaled so both labels carry half the total, mean 1."""
    w = np.array(weights, dtype=np.float64)
    for label in (0, 1):
        mask = labels == label
        if mask.any():
            w[mask] *= 0.5 * len(labels) / w[mask].sum()
    return w
