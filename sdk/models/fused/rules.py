"""How a fused entry combines its members' margins (logit of P(fake), ``l_fake - l_real``).

One definition for the PyTorch reference (tensors) and for the INT8 path, which combines the
members' runtime outputs (NumPy arrays), so both compute the same function. Parameter-free: a
learned combiner was measured beside these and lost on unseen families (``train.py``).
"""
from __future__ import annotations

import numpy as np

RULES = ("max", "mean")


def combine(margins, rule: str):
    """``(members, N)`` margins -> ``(N,)``: ``max``, a face is as fake as its most suspicious
    member says; ``mean``, the members' average. Works on NumPy arrays and torch tensors."""
    if rule == "max":
        return margins.amax(0) if hasattr(margins, "amax") else margins.max(0)
    if rule == "mean":
        return margins.mean(0)
    raise ValueError(f"unknown fusion rule {rule!r}; expected one of {RULES}")


def renormalise(mean_from, std_from, mean_to, std_to) -> tuple[list[float], list[float]]:
    """Per-channel ``(scale, shift)`` taking an input normalised with ``(mean_from, std_from)`` to
    one normalised with ``(mean_to, std_to)``: ``x_to = x_from * scale + shift``, exact for any
    pixel, so members with other statistics read the same crop."""
    scale = [sf / st for sf, st in zip(std_from, std_to)]
    shift = [(mf - mt) / st for mf, mt, st in zip(mean_from, mean_to, std_to)]
    return scale, shift


def margins_from_probs(p: np.ndarray) -> np.ndarray:
    """logit(P(fake)): a two-class softmax's fake-minus-real logit, from its probability."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def probs_from_margins(margin: np.ndarray) -> np.ndarray:
    """P(fake) of a fused margin (the reference's ``softmax((0, margin))[1]``)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, np.float64)))
