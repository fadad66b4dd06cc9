"""GenD: a frozen foundation ViT whose LayerNorms alone are tuned, an L2-normalised CLS feature
on the unit hypersphere, and a linear head (Yermakov et al., "Deepfake Detection that
Generalizes Across Benchmarks", WACV 2026).

Only the LayerNorm affine parameters and the head train (~0.05% of a ViT-S), which keeps the
foundation model's features and makes the trained part tiny enough to ship in the package.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vit import VisionTransformer


class LinearNormHead(nn.Module):
    """``Linear(D, 2)`` on the L2-normalised feature (GenD's "LinearNorm" head)."""

    def __init__(self, dim: int, num_classes: int = 2):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(F.normalize(features, p=2, dim=-1))


class GenD(nn.Module):
    """``forward(pixels) -> logits (B, 2)``; class 1 is *fake*."""

    def __init__(self, backbone: VisionTransformer, num_classes: int = 2):
        super().__init__()
        self.backbone = backbone
        self.head = LinearNormHead(backbone.feature_dim, num_classes)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm CLS features: the hypersphere the uniformity/alignment losses act on."""
        return F.normalize(self.backbone(pixels), p=2, dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixels))

    def freeze_all_but_layernorms(self) -> None:
        for name, param in self.named_parameters():
            param.requires_grad = name.startswith("head.") or _is_layernorm_param(self, name)

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors GenD training changes: every LayerNorm of the backbone and the head."""
        return {
            name: tensor.detach().clone()
            for name, tensor in self.state_dict().items()
            if name.startswith("head.") or _is_layernorm_param(self, name)
        }


def _is_layernorm_param(model: nn.Module, param_name: str) -> bool:
    module_name = param_name.rsplit(".", 1)[0]
    return isinstance(model.get_submodule(module_name), nn.LayerNorm)
