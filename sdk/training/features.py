"""Block summaries of a frozen ViT, computed once per crop and kept on disk.

A head that reads a frozen backbone (GenD's multi-block head) trains on these in seconds: the
backbone runs once per crop, in FP32, and every fold, variant and later run reads the cache. The
cache is keyed by backbone and by the crops' pixels, so new data (or new self-blends) computes
only what it has not seen: entries are stored per batch of crops under their pixels' digest.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..artifact import atomic_path
from ..paths import cache_dir
from ..zoo import Preprocessing
from .runs import pixels

CHUNK = 64  # crops per cache file: a run stopped midway loses at most this many forwards


def block_summaries(backbone, images: np.ndarray, pp: Preprocessing, name: str, batch: int = 16,
                    log_every: int = 256) -> torch.Tensor:
    """``(N, 2 * n_blocks, D)`` FP32: each block's CLS row and patch mean (``Encoder.summaries``)
    of every crop in ``images``, read from the cache where present and computed (then stored)
    where not. ``name`` names the backbone in the cache key."""
    folder = cache_dir() / "block-features" / name
    out, t0, computed = [], time.time(), 0
    for start in range(0, len(images), CHUNK):
        chunk = np.ascontiguousarray(images[start : start + CHUNK])
        path = folder / f"{hashlib.sha256(chunk.tobytes()).hexdigest()[:24]}.safetensors"
        if path.is_file():
            out.append(load_file(str(path))["summaries"])
            continue
        with torch.no_grad():
            feats = torch.cat([backbone.summaries(pixels(chunk[i : i + batch], pp, torch.device("cpu")))
                               for i in range(0, len(chunk), batch)])
        with atomic_path(path) as tmp:
            save_file({"summaries": feats.contiguous()}, str(tmp))
        out.append(feats)
        computed += len(chunk)
        if computed % log_every < CHUNK:
            print(f"[features] {start + len(chunk)}/{len(images)} crops ({computed} computed), "
                  f"{time.time() - t0:.0f} s", flush=True)
    return torch.cat(out) if out else torch.zeros(0)
