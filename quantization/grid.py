"""The INT8 weight grid every target shares: symmetric, one scale per output channel,
``max|w| / 127``, levels -127..127 (PT2E's and ONNX Runtime's, and the grid a distilled
student's tensors are stored on, ``models/tensors.py: pack_int8``). Converters whose own tools
use another grid (NNCF divides by 128) or none (ORT's run-time recipe leaves Conv float) store
weights on this one themselves, so weights already on it come back exactly.
"""
from __future__ import annotations

import numpy as np


def int8_levels(weight: np.ndarray, reduce_axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(levels, scale)``: INT8 levels of ``weight`` and the FP32 scale that multiplies them back,
    one per output channel (``reduce_axes``: the axes one channel's weights span; the scale keeps
    them as size 1, so ``levels * scale`` broadcasts to ``weight``)."""
    weight = np.asarray(weight, dtype=np.float32)
    scale = np.maximum(np.abs(weight).max(axis=reduce_axes, keepdims=True), 1e-12).astype(np.float32) / 127.0
    return np.clip(np.rint(weight / scale), -127, 127).astype(np.int8), scale
