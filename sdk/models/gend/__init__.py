"""The GenD family: LayerNorm-tuned foundation ViT + L2-normalised CLS + linear head.

This file only registers the family and its zoo entries (no torch import): the model is in
``model.py``, its training recipe in ``train.py``, its shipped tensors, model cards and
calibration profiles in ``weights/``, its recorded numerics per variant in ``numerics/``.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import (CLIP_MEAN, CLIP_STD, Family, ModelSpec, Preprocessing, card_threshold, recommended_by_card,
                    register_alias, register_family, register_pair)
from ...training.cards import comparison_column
from ..backbones import OFFLINE_CLIP, OFFLINE_DINOV2

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

CLIP_CARD = FAMILY.weights_dir / "gend_clip_vitb16.card.json"
CLIP_B16 = ModelSpec(
    name="gend-clip-b16-fp32",
    family="gend",
    backbone=OFFLINE_CLIP,
    weights="gend_clip_vitb16.safetensors",
    precision="fp32",
    threshold=card_threshold(CLIP_CARD),  # 5% false positives on the card's held-out real faces
    preprocessing=Preprocessing(mean=CLIP_MEAN, std=CLIP_STD),
    description="GenD on CLIP ViT-B/16 (LN-tuned, L2 + linear head), PyTorch FP32 reference",
)
register_pair(CLIP_B16, "GenD on CLIP ViT-B/16, INT8 weights + run-time INT8 activations, float L2+head")

# The recommended variant: the best held-out mean on the CLIP card's folds, where the DINOv2-S GenD
# was trained and scored by the same recipe (``train ... --compare`` or ``card --attach``), among
# the variants whose INT8 parity on every target has been recorded (``numerics/<variant>.json``):
# an alias only moves to a variant whose builds were measured against its reference.
_MEASURED = {"auc": CLIP_B16.base_name, comparison_column(DINOV2_S14.base_name): DINOV2_S14.base_name}
RECOMMENDED = recommended_by_card(
    CLIP_CARD,
    {col: v for col, v in _MEASURED.items() if FAMILY.numerics_record(v).is_file()},
    fallback=DINOV2_S14.base_name)
register_alias("gend-fp32", f"{RECOMMENDED}-fp32")
register_alias("gend-int8", f"{RECOMMENDED}-int8")
