"""Baselines every model card reports on the same folds: a metadata-only control and a linear
probe on frozen features.

The **metadata control** sees no pixels of the face, only traits of the file the face came
from (its size and shape, greyscale, format, bytes per pixel, JPEG quantisation). If it scores
well, the data has a shortcut (the README's traps: every fake PNG, most reals JPEG), and a
detector's held-out AUC means little unless it beats this control.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import Sample

METADATA_FEATURES = ("log_width", "log_height", "aspect", "greyscale", "png", "jpeg", "webp_or_gif",
                     "bits_per_pixel", "jpeg_q_luma")


def metadata_features(samples: list[Sample], data_dir: Path) -> np.ndarray:
    """One row of :data:`METADATA_FEATURES` per sample, read from the file alone."""
    return np.array([_file_traits(Path(data_dir) / s.path) for s in samples], dtype=np.float64)


def _file_traits(path: Path) -> list[float]:
    with Image.open(path) as im:
        w, h = im.size
        fmt = (im.format or "").upper()
        grey = im.mode in ("L", "LA", "I", "I;16", "1") or _looks_grey(im)
        tables = getattr(im, "quantization", None) or {}
        q_luma = float(np.mean(tables[0])) if 0 in tables else 0.0
    return [np.log(w), np.log(h), w / h, float(grey), float(fmt == "PNG"), float(fmt in ("JPEG", "MPO")),
            float(fmt in ("WEBP", "GIF")), 8.0 * path.stat().st_size / (w * h), q_luma]


def _looks_grey(im: Image.Image) -> bool:
    small = np.asarray(im.convert("RGB").resize((32, 32)), np.int16)
    return bool(np.abs(small - small.mean(axis=2, keepdims=True)).max() <= 2)


class LogisticProbe:
    """L2-regularised logistic regression (standardised inputs), fitted by L-BFGS; weighted so
    both labels count equally."""

    def __init__(self, l2: float = 1e-3, steps: int = 200):
        self.l2, self.steps = l2, steps

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LogisticProbe":
        x = torch.as_tensor(x, dtype=torch.float64)
        self.mean, self.std = x.mean(0), x.std(0).clamp(min=1e-6)
        z = (x - self.mean) / self.std
        t = torch.as_tensor(y, dtype=torch.float64)
        w = torch.where(t > 0, 0.5 / max(float(t.sum()), 1.0), 0.5 / max(float((1 - t).sum()), 1.0))
        self.coef = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([self.coef, self.bias], max_iter=self.steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(z @ self.coef + self.bias, t,
                                                                             reduction="none")).sum()
            loss = loss + self.l2 * self.coef.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (torch.as_tensor(x, dtype=torch.float64) - self.mean) / self.std
        with torch.no_grad():
            return torch.sigmoid(z @ self.coef + self.bias).numpy()
