"""GenD-Lite: a student distilled from a GenD teacher, every weight trained.

Any backbone that maps pixels to a ``(B, D)`` feature is a student (EfficientNet-Lite0 for
phones, a DINOv2 ViT-S/14 as the mid-size one); the head is GenD's: L2-normalise, then
``Linear(D, 2)``, so the student's unit feature lives on a hypersphere as the teacher's does.
A training-only projector (not shipped) maps that feature to the teacher's for the feature loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ArtifactError
from ...zoo import ModelSpec
from ..backbones import create_backbone
from ..contract import DetectorModel, ExportHints
from ..backbones.efficientnet_lite import EfficientNetLite
from ..tensors import load_checked_tensors
from ..gend.model import LinearNormHead, patch_attribution
from ..backbones.vit import VisionTransformer, vit_export_hints


EARLY_FLOAT_LAYERS = ("backbone.stem", "backbone.blocks.0", "backbone.blocks.1")


class Student(DetectorModel):
    """``forward(pixels) -> logits (B, 2)``; class 1 is *fake*."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2):
        super().__init__()
        self.backbone = backbone
        self.head = LinearNormHead(backbone.feature_dim, num_classes)
        self.heatmap_kind = "class-activation" if isinstance(backbone, EfficientNetLite) else (
            "patch-attribution" if isinstance(backbone, VisionTransformer) else "")

    @torch.no_grad()
    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        """CNN: each position's exact share of the fake-minus-real logit (the pooled feature is a
        mean of positions and the head is linear on its unit vector); ViT: GenD's patch attribution."""
        if isinstance(self.backbone, VisionTransformer):
            return patch_attribution(self.backbone.forward_tokens(pixels), self.head)
        if not isinstance(self.backbone, EfficientNetLite):
            return super().explain(pixels)
        maps = self.backbone.feature_map(pixels)
        norm = maps.mean(dim=(2, 3)).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        direction = self.head.linear.weight[1] - self.head.linear.weight[0]
        return torch.einsum("bchw,c->bhw", maps, direction) / (maps.shape[2] * maps.shape[3] * norm)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixels))

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(pixels)
        return self.head(feats), F.normalize(feats, p=2, dim=-1)

    def export_hints(self) -> ExportHints:
        if isinstance(self.backbone, EfficientNetLite):
            # The INT8 activation scheme per target is the spec's (ModelSpec.int8_activations_on).
            # The "stem" kept float under keep_first_layer_float is the stem conv and the first two
            # MBConv blocks: at 112x112 they carry the finest residual detail, and INT8 weights of
            # just these three layers (stem, blocks 0-1 depthwise) cost most of the drift
            # (simulated per layer on 128 real faces: Pearson 0.9984-0.9993 each, 0.9850 for all
            # conv weights together) for 3% of the MACs.
            return ExportHints(quantized="backbone", stem=EARLY_FLOAT_LAYERS)
        if isinstance(self.backbone, VisionTransformer):
            return vit_export_hints(self.backbone, smoothing=False)
        return ExportHints(quantized="backbone")

    def fold_for_inference(self) -> None:
        if isinstance(self.backbone, EfficientNetLite):
            self.backbone.fold_batchnorm()

    def fix_input_size(self, size: int) -> None:
        if isinstance(self.backbone, VisionTransformer):
            self.backbone.embeddings.resize_to(size // self.backbone.config.patch_size)


def build(spec: ModelSpec, pretrained: bool = True) -> Student:
    """The family's builder: the student backbone (ImageNet / DINOv2 weights), GenD's head, and
    the distilled tensors when the package ships them."""
    backbone = create_backbone(spec.backbone, pretrained=pretrained)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Student(backbone)
    if pretrained and spec.weights:
        load_distilled(model, spec)
    return model.eval()


def load_distilled(model: Student, spec: ModelSpec) -> None:
    """Every tensor of the student (conv/linear weights stored INT8 per channel, the stem FP16:
    :func:`~deepfake_sdk.models.tensors.pack_int8`; the FP32 reference lies on that grid)."""
    path = spec.weights_path
    state = load_checked_tensors(
        spec, f"distil them with `deepfake-sdk distill --teacher gend-fp32 --student {spec.base_name} --data <data folder>`")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise ArtifactError(f"{path.name} does not fit this student: missing {missing[:3]}, unexpected {unexpected[:3]}")
