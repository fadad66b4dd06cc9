"""GenD: a frozen foundation ViT whose LayerNorms alone are tuned, an L2-normalised CLS feature
on the unit hypersphere, and a linear head (Yermakov et al., "Deepfake Detection that
Generalizes Across Benchmarks", WACV 2026).

Only the LayerNorm affine parameters and the head train (~0.05% of a ViT), which keeps the
foundation model's features and makes the trained part tiny enough to ship in the package.
Any :class:`~deepfake_sdk.models.backbones.vit.VisionTransformer` is a backbone (DINOv2, CLIP, ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ArtifactError
from ...zoo import ModelSpec
from ..backbones import create_backbone
from ..contract import DetectorModel, ExportHints
from ..tensors import load_checked_tensors
from ..backbones.vit import VisionTransformer, vit_export_hints


class LinearNormHead(nn.Module):
    """``Linear(D, 2)`` on the L2-normalised feature (GenD's "LinearNorm" head)."""

    def __init__(self, dim: int, num_classes: int = 2):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(F.normalize(features, p=2, dim=-1))


class BlockNormHead(nn.Module):
    """``Linear(k * D, 2)`` on block summaries ``(B, k, D)``, each L2-normalised on its own and
    then concatenated (the multi-block readout: RINE, Koutlis & Papadopoulos, ECCV 2024, reads
    intermediate CLS tokens the same way). Normalising per block keeps a block with a large
    residual stream from drowning the others; the weights are those of a logistic regression on
    that concatenation."""

    def __init__(self, n_summaries: int, dim: int, num_classes: int = 2):
        super().__init__()
        self.n_summaries = n_summaries
        self.linear = nn.Linear(n_summaries * dim, num_classes)

    @staticmethod
    def feature(summaries: torch.Tensor) -> torch.Tensor:
        return F.normalize(summaries, p=2, dim=-1).flatten(1)

    def forward(self, summaries: torch.Tensor) -> torch.Tensor:
        return self.linear(self.feature(summaries))


def patch_attribution(tokens: torch.Tensor, head: LinearNormHead) -> torch.Tensor:
    """Each final patch token, unit-normalised as the CLS feature is, against the head's
    fake-minus-real direction: ``(B, 1 + g*g, D) -> (B, g, g)``. The head reads only the CLS
    token, so this says which patches carry what the head calls fake, not how much each moved
    the score."""
    direction = head.linear.weight[1] - head.linear.weight[0]
    cells = F.normalize(tokens[:, 1:], p=2, dim=-1) @ direction
    side = int(round(cells.shape[1] ** 0.5))
    return cells.reshape(cells.shape[0], side, side)


def block_attribution(vit: VisionTransformer, pixels: torch.Tensor, head: BlockNormHead) -> torch.Tensor:
    """The multi-block head's heatmap, as :func:`patch_attribution` draws the single-CLS head's:
    the last block's patch tokens, unit-normalised as its CLS row is, against the head's
    fake-minus-real direction for that CLS row. ``(B, g, g)``.

    Measured on 16 self-blended real-pool faces (tests/test_explain.py), only the CLS directions
    of late blocks light the blended region up (block 11: 0.25 inside the mask vs 0.09 outside);
    the patch-mean directions read the whole crop and light the background more, and neither a
    sum over every block nor gradient x input at the first block localised the blend."""
    per_block = head.n_summaries // len(vit.encoder.layer)
    last_cls = (head.linear.weight[1] - head.linear.weight[0]).reshape(head.n_summaries, -1)[-per_block]
    x = vit.embed(pixels)
    for block in vit.encoder.layer:
        x = block(x)
    cells = F.normalize(x[:, 1:], p=2, dim=-1) @ last_cls
    side = int(round(cells.shape[1] ** 0.5))
    return cells.reshape(cells.shape[0], side, side)


class GenD(DetectorModel):
    """``forward(pixels) -> logits (B, 2)``; class 1 is *fake*.

    ``readout`` says what the head reads: ``"cls"``, the final CLS token (the paper's head), or
    a summary of every block (``"blocks"``: each block's CLS row; ``"blocks+patches"``: and each
    block's patch-token mean), read from the same single pass (:class:`BlockNormHead`)."""

    heatmap_kind = "patch-attribution"

    def __init__(self, backbone: VisionTransformer, num_classes: int = 2, readout: str = "cls"):
        super().__init__()
        self.backbone = backbone
        self.readout = readout
        if readout == "cls":
            self.head = LinearNormHead(backbone.feature_dim, num_classes)
        else:
            backbone.read_blocks(readout)
            per_block = 2 if readout == "blocks+patches" else 1
            self.head = BlockNormHead(per_block * len(backbone.encoder.layer), backbone.feature_dim, num_classes)

    def _unit(self, feats: torch.Tensor) -> torch.Tensor:
        flat = self.head.feature(feats) if isinstance(self.head, BlockNormHead) else feats
        return F.normalize(flat, p=2, dim=-1)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm features: the hypersphere the uniformity/alignment losses act on."""
        return self._unit(self.backbone(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixels))

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(pixels)
        return self.head(feats), self._unit(feats)

    @torch.no_grad()
    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, BlockNormHead):
            return block_attribution(self.backbone, pixels, self.head)
        return patch_attribution(self.backbone.forward_tokens(pixels), self.head)

    def export_hints(self) -> ExportHints:
        return vit_export_hints(self.backbone)

    def fix_input_size(self, size: int) -> None:
        self.backbone.embeddings.resize_to(size // self.backbone.config.patch_size)

    def freeze_all_but_layernorms(self, from_block: int | None = None) -> None:
        """Train the head and every LayerNorm; with ``from_block``, only the LayerNorms of that
        block on and the final one (the budget recipe, whose earlier blocks run once, cached)."""
        n_blocks = len(self.backbone.encoder.layer)
        for name, param in self.named_parameters():
            param.requires_grad = name.startswith("head.") or (_is_layernorm_param(self, name) and (
                from_block is None or _block_index(name, n_blocks) >= from_block))

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


def _block_index(param_name: str, n_blocks: int) -> int:
    """Which encoder block a parameter belongs to; -1 before the blocks, ``n_blocks`` after."""
    parts = param_name.split(".")
    if "layer" in parts and parts[parts.index("layer") - 1] == "encoder":
        return int(parts[parts.index("layer") + 1])
    return -1 if param_name.startswith(("backbone.embeddings", "backbone.pre_layernorm")) else n_blocks


def build(spec: ModelSpec, pretrained: bool = True) -> GenD:
    """The family's builder (registered in ``__init__``): backbone, head, shipped tensors."""
    backbone = create_backbone(spec.backbone, pretrained=pretrained)
    with torch.random.fork_rng():  # an untrained head is the same in every process
        torch.manual_seed(0)
        model = GenD(backbone, readout=dict(spec.arch).get("readout", "cls"))
    if pretrained and spec.weights:
        load_trained(model, spec)
    return model.eval()


def load_trained(model: GenD, spec: ModelSpec) -> None:
    """Overlay the shipped LayerNorm + head tensors onto the backbone's pretrained weights."""
    path = spec.weights_path
    state = load_checked_tensors(
        spec, f"train them with `deepfake-sdk train {spec.base_name}-fp32 --data <data folder>`")
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ArtifactError(f"{path.name} holds tensors this model lacks: {unknown[:3]}")
    model.load_state_dict(state, strict=False)
