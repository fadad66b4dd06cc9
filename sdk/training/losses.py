"""GenD's objective: cross-entropy + 0.5 * uniformity + 0.1 * label-aware alignment.

Both regularisers act on unit-norm features (Wang & Isola, ICML 2020): uniformity spreads all
features over the hypersphere so the tuned backbone keeps its general features; alignment pulls
features of the same label together.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def uniformity_loss(features: torch.Tensor, t: float = 2.0, floor: float = 1e-6) -> torch.Tensor:
    """log E[exp(-t * ||f_i - f_j||^2)] over distinct pairs of a batch of unit vectors
    (0 for a batch of one, which has no pairs)."""
    if features.shape[0] < 2:
        return features.sum() * 0.0
    sq_dist = torch.pdist(features, p=2).pow(2)
    return sq_dist.mul(-t).exp().mean().clamp(min=floor).log()


def alignment_loss(features: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """E[||f_i - f_j||^alpha] over pairs with the same label (0 when the batch has none)."""
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    i, j = same.nonzero(as_tuple=True)
    if i.numel() == 0:
        return features.sum() * 0.0
    return (features[i] - features[j]).norm(p=2, dim=1).pow(alpha).mean()


def gend_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    w_uniformity: float = 0.5,
    w_alignment: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    ce = F.cross_entropy(logits, labels)
    uni = uniformity_loss(features)
    ali = alignment_loss(features, labels)
    total = ce + w_uniformity * uni + w_alignment * ali
    return total, {"ce": ce.item(), "uniformity": uni.item(), "alignment": ali.item()}
