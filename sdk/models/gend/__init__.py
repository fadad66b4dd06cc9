"""The GenD family: LayerNorm-tuned foundation ViT + L2-normalised CLS + linear head.

This file only registers the family and its zoo entries (no torch import): the model is in
``model.py``, its training recipe in ``train.py``, its shipped tensors, model cards and
calibration profiles in ``weights/``, its recorded numerics per variant in ``numerics/``.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import Family, ModelSpec, register_alias, register_family, register_pair
from ..backbones import OFFLINE_DINOV2

FAMILY = register_family(Family(
    name="gend",
    builder="deepfake_sdk.models.gend.model:build",
    trainer="deepfake_sdk.models.gend.train:run",
    folder=Path(__file__).resolve().parent,
    description="GenD: LayerNorm-tuned foundation ViT, L2-normalised CLS feature, linear head",
))

DINOV2_S14 = ModelSpec(
    name="gend-dinov2-s14-fp32",
    family="gend",
    backbone=OFFLINE_DINOV2,
    weights="gend_dinov2_vits14.safetensors",
    precision="fp32",
    description="GenD on DINOv2 ViT-S/14 (LN-tuned, L2 + linear head), PyTorch FP32 reference",
)
register_pair(DINOV2_S14, "GenD on DINOv2 ViT-S/14, INT8 weights + run-time INT8 activations, float L2+head")

# The recommended variant (the model card's best held-out AUC).
register_alias("gend-fp32", "gend-dinov2-s14-fp32")
register_alias("gend-int8", "gend-dinov2-s14-int8")
