"""Entries with no single graph of their own: a composite runs other entries' artifacts (its
*parts*) and combines their scores.

A family declares itself composite with ``Family(composite="module:object")``, the object
following :class:`Composite`; its parts are named in the spec's ``arch`` (the builder's keyword
arguments, ``(("parts", ("gendf-fp32", "lfm-fp32")),)``). The core reads nothing else: ``load()``
opens a spec through :func:`backend_for` (a single-graph spec is its own one part), exporters and
bundlers refuse a composite (:func:`require_single_graph`), drift and references follow the parts
(:func:`~deepfake_sdk.zoo.parts_of`), and numerics combines the parts' measured scores with
:meth:`Composite.combine_probs`. A new composite is a folder; the core has no branch for any one.
Nothing here imports torch.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..errors import UsageError
from ..zoo import ModelSpec, composite_of, parts_of


class Backend(Protocol):
    """What a detector runs: a preprocessed ``(N, 3, H, W)`` batch -> ``(N, 2)`` logits."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...


class Composite(Protocol):
    """A family whose entries serve through other entries' artifacts."""

    def backend(self, spec: ModelSpec, parts: list[Backend]) -> Backend:
        """The entry's backend over its parts' backends (in :func:`~deepfake_sdk.zoo.parts_of` order)."""

    def combine_probs(self, spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
        """``(parts, N)`` P(fake) measured per part -> the entry's ``(N,)`` P(fake), as its backend
        would give (numerics verifies each part apart, then the combination)."""

    def check(self, spec: ModelSpec) -> None:
        """Refuse an entry that cannot serve (a stale card), before any part is built."""


def backend_for(spec: ModelSpec, open_part: Callable[[ModelSpec], Backend]) -> Backend:
    """``spec``'s backend: ``open_part(spec)`` for a single-graph entry, its composite's backend
    over each part opened alike otherwise."""
    composite = composite_of(spec)
    if composite is None:
        return open_part(spec)
    composite.check(spec)
    return composite.backend(spec, [open_part(part) for part in parts_of(spec)])


def require_single_graph(spec: ModelSpec, verb: str = "export") -> None:
    """Refuse to ``verb`` an entry that has no graph of its own, naming the parts to use instead."""
    parts = parts_of(spec)
    if parts:
        raise UsageError(f"{spec.name} has no artifact of its own to {verb}: it runs its parts' artifacts "
                         f"({', '.join(p.name for p in parts)}); {verb} those")
