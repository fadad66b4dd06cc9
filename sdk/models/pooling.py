"""Pooling that every export target lowers (shared by the families that pool by rank)."""
from __future__ import annotations

import torch


def ranked_top_k(flat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest values of each row of ``flat`` (``(..., N)``), largest first, and the 0/1
    mask of their positions, by ``k`` rounds of max + argmax + mask.

    The same values as ``torch.topk`` (a tie removes one position a round, so equal values are
    kept as often), written with ops every target lowers: LiteRT turns ``topk`` into a
    StableHLO sort its interpreter cannot run. Evaluation and export graphs use this form; training may use ``topk``.
    """
    positions = torch.arange(flat.shape[-1], device=flat.device)
    values, picked, rest = [], torch.zeros_like(flat), flat
    for _ in range(k):
        hit = positions == rest.argmax(-1, keepdim=True)
        values.append(rest.amax(-1, keepdim=True))
        picked = picked + hit.to(flat.dtype)
        rest = rest.masked_fill(hit, float("-inf"))
    return torch.cat(values, -1), picked
