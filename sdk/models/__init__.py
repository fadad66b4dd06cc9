"""Detector families, one folder each; importing this registers every family's zoo entries.

Adding a family = a folder here (model, training recipe, weights + cards, numerics) whose
``__init__`` registers a :class:`~deepfake_sdk.zoo.Family` and its ``ModelSpec``s, plus one line
below. Nothing here imports torch: builders are named by module path and loaded on use.
"""
from . import fused, gend, gend_lite, gendf, lfm  # noqa: F401
