"""Heatmaps: where on the aligned face crop a detector saw fake evidence.

Each family computes its own map on the crop it scored (``DetectorModel.explain``): GenD a
patch attribution (each final patch token against the head's fake direction), LFM the exact
share of each position in the fake-minus-real logit (Top-K pooling makes it exact), GenDF its
discontinuity map. A map is a coarse grid (one cell per patch or feature position) that tiles
the crop exactly, so cell ``(i, j)`` covers pixels ``[i*s, (i+1)*s) x [j*s, (j+1)*s)`` with
``s = crop_size / grid side``: that is what "aligned with the crop" means here, and what
:meth:`Heatmap.upsampled` and :meth:`Heatmap.overlay` rely on.

Exported graphs output logits only, so for an INT8 artifact the map comes from the family's
FP32 reference (same trained tensors) run on the same crop; the ``source`` field says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Heatmap:
    """``grid``: ``(h, w)`` float32, signed, larger = more evidence of *fake*; ``kind`` names
    what the family computed; ``crop``: the uint8 crop it was computed on (for rendering)."""

    grid: np.ndarray = field(repr=False)
    kind: str
    crop_size: int
    source: str  # "pytorch" (the reference) for every backend today
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)

    def upsampled(self) -> np.ndarray:
        """The grid at the crop's resolution (``(crop_size, crop_size)``), bilinear between cell
        centres."""
        img = Image.fromarray(self.grid.astype(np.float32), mode="F")
        return np.asarray(img.resize((self.crop_size, self.crop_size), Image.Resampling.BILINEAR), np.float32)

    def normalised(self) -> np.ndarray:
        """The upsampled map in ``[0, 1]``: 0 where evidence is lowest (or negative), 1 at the peak."""
        up = np.maximum(self.upsampled(), 0.0)
        peak = float(up.max())
        return up / peak if peak > 0 else up

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The crop with the map over it in red (transparent where there is no fake evidence)."""
        if self.crop is None:
            raise ValueError("this heatmap carries no crop to draw on")
        heat = self.normalised()[..., None]
        base = self.crop.astype(np.float32)
        red = np.array([255.0, 32.0, 0.0], np.float32)
        out = base * (1 - alpha * heat) + red * (alpha * heat)
        return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))

    def to_dict(self, decimals: int = 4) -> dict:
        return {"kind": self.kind, "source": self.source, "crop_size": self.crop_size,
                "shape": list(self.grid.shape), "grid": np.round(self.grid.astype(np.float64), decimals).tolist()}
