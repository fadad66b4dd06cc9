"""Tokens of a frozen backbone, computed once per item and kept on disk.

A recipe that trains only what sits after a frozen prefix (GenD's budget recipe: the last blocks'
LayerNorms; GenDF: a head on the final tokens) runs the prefix once per crop and reads its
tokens back every epoch and fold: hours of CPU become minutes.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..artifact import atomic_path
from ..paths import cache_dir
from ..zoo import Preprocessing
from .runs import autocast, pixels


class TokenCache:
    """Tokens entering block ``start`` of a frozen backbone for every item, computed once and
    stored FP16: the budget recipe's frozen prefix, shared by every fold (and by later runs:
    kept on disk under the cache, keyed by backbone, block and the items' pixels). Computed
    under bf16 autocast where that is fast (3.5x on an AVX-512 BF16 CPU); the card records how
    closely scores through the cache track the FP32 model."""

    def __init__(self, backbone, images: np.ndarray, start: int, pp: Preprocessing, batch: int = 16,
                 key: str | None = None):
        self.start = start
        t0 = time.time()
        path = cache_dir() / "tokens" / f"{key}-b{start}.safetensors" if key else None
        if path is not None and path.is_file():
            self.tokens = load_file(str(path))["tokens"]
        else:
            self.tokens = self._compute(backbone, images, start, pp, batch, t0)
            if path is not None:
                with atomic_path(path) as tmp:
                    save_file({"tokens": self.tokens.contiguous()}, str(tmp))
        self.seconds = time.time() - t0

    @staticmethod
    def _compute(backbone, images: np.ndarray, start: int, pp: Preprocessing, batch: int, t0: float) -> torch.Tensor:
        chunks = []
        with torch.no_grad(), autocast(torch.device("cpu")):
            for i in range(0, len(images), batch):
                chunks.append(backbone.tokens_before(pixels(images[i : i + batch], pp, torch.device("cpu")),
                                                     start).half())
                if (i // batch) % 50 == 0:
                    print(f"[cache] {i + len(chunks[-1])}/{len(images)} crops, {time.time() - t0:.0f} s", flush=True)
        return torch.cat(chunks)
