"""GenDF: a frozen foundation ViT and a head of ~0.12 M parameters that mines discontinuities
between neighbouring patch tokens (built from the method's description; no public code).

* **Discontinuity mining**: every final patch token is projected to 32 dimensions and
  unit-normalised; the discontinuity of two neighbouring patches is ``1 - cos`` of their
  projections, and a patch's value in the map is the mean over its 4-neighbours. Training
  (``train.py``) makes neighbouring patches of real faces continuous and pushes apart the pairs
  a self-blend's mask boundary crosses: a contrastive loss over neighbour pairs, so a swapped or
  pasted region shows as a ridge in the map. The map's mean and top-8 mean feed the classifier.
* **Feature-space redistribution**: a linear map of the CLS token to 128 dimensions, centred and
  scaled by its running statistics (BatchNorm without affine), trained with a loss that puts the
  real and fake class means symmetric about the origin and apart.
* **Classification-invariant feature augmentation** (training only, no weights): noise added to
  the redistributed feature orthogonally to the classifier's fake-minus-real direction, so the
  decision stays put while the rest of the feature space is explored.

``explain`` returns the discontinuity map, one cell per patch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ArtifactError
from ...zoo import ModelSpec
from ..backbones import create_backbone
from ..contract import DetectorModel, ExportHints
from ..pooling import ranked_top_k
from ..tensors import load_checked_tensors
from ..backbones.vit import VisionTransformer, vit_export_hints

MINED_DIM = 32
REDISTRIBUTED_DIM = 128
MAP_TOP_K = 8


def neighbour_discontinuity(projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 - cos`` between horizontally and vertically neighbouring cells of unit vectors
    ``(B, g, g, d)``: ``(B, g, g-1)`` and ``(B, g-1, g)``."""
    horizontal = 1 - (projected[:, :, 1:] * projected[:, :, :-1]).sum(-1)
    vertical = 1 - (projected[:, 1:] * projected[:, :-1]).sum(-1)
    return horizontal, vertical


def discontinuity_map(horizontal: torch.Tensor, vertical: torch.Tensor) -> torch.Tensor:
    """Each cell's mean discontinuity to its 2-4 neighbours: ``(B, g, g)``."""
    b, g = vertical.shape[0], vertical.shape[2]
    total = (F.pad(horizontal, (0, 1)) + F.pad(horizontal, (1, 0)) + F.pad(vertical, (0, 0, 0, 1))
             + F.pad(vertical, (0, 0, 1, 0)))
    ones_h, ones_v = torch.ones_like(horizontal[:1]), torch.ones_like(vertical[:1])
    count = F.pad(ones_h, (0, 1)) + F.pad(ones_h, (1, 0)) + F.pad(ones_v, (0, 0, 0, 1)) + F.pad(ones_v, (0, 0, 1, 0))
    return (total / count).reshape(b, g, g)


class GenDFHead(nn.Module):
    """Tokens ``(B, 1 + g*g, D)`` (final-normalised) -> logits, with the pieces training needs."""

    def __init__(self, dim: int, num_classes: int = 2):
        super().__init__()
        self.mine = nn.Linear(dim, MINED_DIM, bias=False)
        self.redistribute = nn.Linear(dim, REDISTRIBUTED_DIM)
        self.centre = nn.BatchNorm1d(REDISTRIBUTED_DIM, affine=False)
        self.classifier = nn.Linear(REDISTRIBUTED_DIM + 2, num_classes)

    def mined(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = tokens[:, 1:]
        side = math.isqrt(int(patches.shape[1]))  # a plain int, also while a converter traces
        projected = F.normalize(self.mine(patches), p=2, dim=-1).reshape(patches.shape[0], side, side, MINED_DIM)
        return neighbour_discontinuity(projected)

    def parts(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the losses read: the neighbour discontinuities, the map, the redistributed
        feature and the classifier's input."""
        horizontal, vertical = self.mined(tokens)
        dmap = discontinuity_map(horizontal, vertical)
        flat = dmap.flatten(1)
        stats = torch.stack([flat.mean(-1), ranked_top_k(flat, MAP_TOP_K)[0].mean(-1)], dim=-1)
        z = self.centre(self.redistribute(tokens[:, 0]))
        return {"horizontal": horizontal, "vertical": vertical, "map": dmap, "z": z, "stats": stats}

    def classify(self, z: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([z, stats], dim=-1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        p = self.parts(tokens)
        return self.classify(p["z"], p["stats"])

    def fake_direction(self) -> torch.Tensor:
        """The classifier's fake-minus-real direction over the redistributed feature."""
        w = self.classifier.weight
        return (w[1] - w[0])[:REDISTRIBUTED_DIM]


class GenDF(DetectorModel):
    """``forward(pixels) -> logits (B, 2)``; class 1 is *fake*. The backbone is frozen."""

    heatmap_kind = "discontinuity"

    def __init__(self, backbone: VisionTransformer, num_classes: int = 2):
        super().__init__()
        self.backbone = backbone
        self.head = GenDFHead(backbone.feature_dim, num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_tokens(pixels))

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.head.parts(self.backbone.forward_tokens(pixels))
        return self.head.classify(p["z"], p["stats"]), F.normalize(p["z"], p=2, dim=-1)

    @torch.no_grad()
    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head.parts(self.backbone.forward_tokens(pixels))["map"]

    def export_hints(self) -> ExportHints:
        return vit_export_hints(self.backbone)

    def fix_input_size(self, size: int) -> None:
        self.backbone.embeddings.resize_to(size // self.backbone.config.patch_size)

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The head alone: the backbone stays as its package ships it."""
        return {name: t.detach().clone() for name, t in self.state_dict().items() if name.startswith("head.")}

    def head_parameters(self) -> int:
        return sum(p.numel() for p in self.head.parameters())


def build(spec: ModelSpec, pretrained: bool = True) -> GenDF:
    """The family's builder: the frozen backbone (its package's weights) and the trained head."""
    backbone = create_backbone(spec.backbone, pretrained=pretrained)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GenDF(backbone)
    if pretrained and spec.weights:
        state = load_checked_tensors(spec, f"train them with `deepfake-sdk train {spec.name} --data <data folder>`")
        unknown = [k for k in state if not k.startswith("head.")]
        if unknown:
            raise ArtifactError(f"{spec.weights} holds tensors outside GenDF's head: {unknown[:3]}")
        model.load_state_dict(state, strict=False)
    return model.eval()
