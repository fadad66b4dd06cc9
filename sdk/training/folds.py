"""Held-out folds for claims about generalization: whole families and whole sources left out.

Faces of one clip, grid or identity are near-duplicates and every source has its own look, so
no fold ever splits a source: a fold holds out *sources*. Three kinds of held-out set:

* the **real pool**: real-only sources (chosen by a hash of their names) that no model of any
  fold trains on. Every fold's test set includes them, so a fold's AUC pits its held-out fakes
  against reals the model never saw; the decision threshold is set on them too (a stated
  false-positive rate). Shipped models keep them out as well, except GenD's multi-block head,
  which trains on them and sets its threshold on cross-fitted scores (``gend/train_blocks.py``).
* **family folds**: every source holding a fake of one manipulation family (faceswap,
  reenactment, face_editing, gan_full_synthesis, diffusion) is left out, its reals with it (and
  its siblings: a tool's input photos go with its swaps); the test set is that family's fakes +
  those reals + the real pool.
* **source folds**: one large source (its reals and fakes) left out while the rest of its
  family trains: generalization to an unseen tool or generator of a known kind.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .data import Sample

FAMILIES = ("faceswap", "reenactment", "face_editing", "gan_full_synthesis", "diffusion")
REAL_POOL_SIZE = 300  # faces of held-out real-only sources
REAL_POOL_MAX_SOURCE = 150  # large real sources train (their faces feed the self-blends)
# Sources that are one origin split in two (a tool's input photos and its swaps): whenever one is
# held out, so is the other, or the model would learn the held-out fakes' own photos as real.
SIBLINGS = (("deepfacelive_photos", "deepfacelive_swaps"), ("dfdc_crops_aaronchong888", "dfdc_video_aaronchong888"))
# The largest fake sources of ../shared/data, each left out alone (with its siblings).
SOURCE_FOLDS = {
    "deepfacelive": ("deepfacelive_swaps",),
    "yonsei_rff": ("yonsei_rff_160",),
    "stargan": ("stargan_v1_results",),
    "celebbasis_sd": ("celebbasis_sd_reg",),
    "msggan": ("msggan_samples",),
}


@dataclass(frozen=True)
class Fold:
    """Which samples train and which test, as index arrays into one sample list."""

    name: str
    kind: str  # "family" | "source" | "all"
    train: np.ndarray
    test: np.ndarray
    held_out_sources: tuple[str, ...]

    def describe(self, samples: list[Sample]) -> dict:
        test = [samples[i] for i in self.test]
        return {"name": self.name, "kind": self.kind, "train": int(len(self.train)), "test": int(len(self.test)),
                "test_real": sum(1 for s in test if not s.label), "test_fake": sum(1 for s in test if s.label),
                "held_out_sources": list(self.held_out_sources)}


def real_pool(samples: list[Sample], size: int = REAL_POOL_SIZE) -> tuple[str, ...]:
    """Real-only sources (by hash order, the big ones skipped) holding about ``size`` faces, and
    never more than a quarter of all real faces (the rest train and feed the self-blends)."""
    counts: dict[str, list[int]] = {}
    for s in samples:
        counts.setdefault(s.source, [0, 0])[s.label] += 1
    paired = {src for group in SIBLINGS for src in group}  # a tool's input photos belong with its fakes
    real_only = [src for src, (_, fakes) in counts.items() if fakes == 0 and src not in paired]
    picked, held = [], 0
    size = min(size, sum(reals for reals, _ in counts.values()) // 4)
    for src in sorted(real_only, key=lambda s: hashlib.sha256(s.encode()).hexdigest()):
        if held >= max(size, 1):
            break
        if counts[src][0] <= REAL_POOL_MAX_SOURCE:
            picked.append(src)
            held += counts[src][0]
    return tuple(sorted(picked))


def make_folds(samples: list[Sample], families: tuple[str, ...] = FAMILIES,
               source_folds: dict[str, tuple[str, ...]] | None = None) -> tuple[list[Fold], Fold]:
    """The family and source folds, and the final split (everything but the real pool trains;
    its test set is the real pool alone, where the threshold is chosen)."""
    pool = set(real_pool(samples))
    source = np.array([s.source for s in samples])
    in_pool = np.isin(source, list(pool))
    folds = []
    for family in families:
        held = sorted({s.source for s in samples if s.family == family})
        if held:
            folds.append(_fold(samples, f"family:{family}", "family", held, in_pool, keep_fake=lambda s, f=family: s.family == f))
    for name, sources in (SOURCE_FOLDS if source_folds is None else source_folds).items():
        held = sorted(set(sources) & set(source))
        if held:
            folds.append(_fold(samples, f"source:{name}", "source", held, in_pool, keep_fake=lambda s: True))
    final = Fold("all", "all", np.flatnonzero(~in_pool), np.flatnonzero(in_pool), tuple(sorted(pool)))
    return folds, final


def with_siblings(sources) -> list[str]:
    held = set(sources)
    for group in SIBLINGS:
        if held & set(group):
            held |= set(group)
    return sorted(held)


def _fold(samples: list[Sample], name: str, kind: str, held: list[str], in_pool: np.ndarray, keep_fake) -> Fold:
    held = with_siblings(held)
    out = np.isin([s.source for s in samples], held)
    train = np.flatnonzero(~out & ~in_pool)
    test = [i for i in np.flatnonzero(out | in_pool) if not samples[i].label or keep_fake(samples[i])]
    return Fold(name, kind, train, np.array(test, dtype=int), tuple(held))
