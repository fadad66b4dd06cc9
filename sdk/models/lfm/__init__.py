"""The LFM family: a local-focus CNN on the neighbouring-pixel residual, trained from scratch.

Registers ``lfm-fp32`` (the PyTorch reference) and ``lfm-int8`` (no torch import here): the
model is in ``model.py``, its training recipe in ``train.py``, the trained tensors, model card
and calibration profile in ``weights/``, recorded numerics in ``numerics/``.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import Family, ModelSpec, card_threshold, register_family, register_pair

# No pretrained backbone: the salience CNN trains from scratch, so this names the architecture
# (the artifact manifest's ``backbone``), not an entry of ``models.backbones``.
NPR_SALIENCE = "npr-salience-cnn"

FAMILY = register_family(Family(
    name="lfm",
    builder="deepfake_sdk.models.lfm.model:build",
    trainer="deepfake_sdk.models.lfm.train:run",
    folder=Path(__file__).resolve().parent,
    description="LFM: NPR residual, salience CNN, Top-K pooling, rank-based dropout (trained from scratch)",
))

_CARD = FAMILY.weights_dir / "lfm.card.json"
LFM_SPEC = ModelSpec(
    name="lfm-fp32",
    family="lfm",
    backbone=NPR_SALIENCE,
    weights="lfm.safetensors",
    precision="fp32",
    version="0.2.0",  # 0.2: the salience map is trained against self-blend masks (train.localization_loss)
    threshold=card_threshold(_CARD),  # 5% false positives on the card's held-out real faces
    description="LFM (NPR + salience CNN + Top-16 pooling), PyTorch FP32 reference",
    int8_activations="static",  # a ReLU CNN: static activations let its convolutions run INT8
)
register_pair(LFM_SPEC, "LFM, INT8 salience network (static activations), float Top-K and head")
