"""Detector families, one folder each; importing this registers every family's zoo entries.

Adding a family = a folder here (model, training recipe, weights + cards, numerics) whose
``__init__`` registers a :class:`~deepfake_sdk.zoo.Family` and its ``ModelSpec``s; it is found by
discovery (every subpackage is imported, in name order) and packaged by discovery (``setup.py``),
so nothing else is edited. ``backbones/`` holds the frozen towers the families share. Nothing here
imports torch: builders are named by module path and loaded on use.
"""
from __future__ import annotations

import importlib
import pkgutil


def _discover() -> list[str]:
    """Import every subpackage (a family registers itself on import); their names, sorted."""
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and not m.name.startswith("_"))
    for name in found:
        importlib.import_module(f"{__name__}.{name}")
    return found


PACKAGES = _discover()
