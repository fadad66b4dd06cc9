"""The GenDF family: a frozen foundation ViT and a small head that mines discontinuities between
neighbouring patch tokens, redistributes the feature space and augments it without weights.

Registers ``gendf-fp32`` / ``gendf-int8`` (CLIP ViT-B/16, the default; any registered ViT
backbone works through the same builder). The model is in ``model.py``, its training recipe in
``train.py``, the head's tensors, card and calibration profile in ``weights/``.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import CLIP_MEAN, CLIP_STD, Family, ModelSpec, Preprocessing, card_threshold, register_family, register_pair
from ..backbones import OFFLINE_CLIP

FAMILY = register_family(Family(
    name="gendf",
    builder="deepfake_sdk.models.gendf.model:build",
    trainer="deepfake_sdk.models.gendf.train:run",
    folder=Path(__file__).resolve().parent,
    description="GenDF: frozen ViT + <=0.3M-parameter head mining neighbouring-patch discontinuities",
))

_CARD = FAMILY.weights_dir / "gendf_clip_vitb16.card.json"
GENDF_CLIP = ModelSpec(
    name="gendf-fp32",
    family="gendf",
    backbone=OFFLINE_CLIP,
    weights="gendf_clip_vitb16.safetensors",
    precision="fp32",
    threshold=card_threshold(_CARD),  # 5% false positives on the card's held-out real faces
    preprocessing=Preprocessing(mean=CLIP_MEAN, std=CLIP_STD),
    # All-INT8 CLIP passed the build gate yet flipped 4 of 284 held-out faces near the 0.939
    # threshold on ONNX; with its 8 most sensitive Linears float, 2 (0.70%, pass, 138 MB instead
    # of 92), as ExecuTorch's row already gives it. Measured not to help on OpenVINO (3 flips either
    # way, +46 MB). LiteRT's per-row INT8 needs more: from a floor of 16 its build gate passes at
    # 32 float Linears, 2 release flips (0.70%), 197 MB; from 0 (reaching 8) 5 flips (numerics/gendf.md).
    int8_float_floor=(("onnx", 8), ("tflite", 16)),
    int8_asymmetric_weights=("openvino",),  # 3 -> 2 release-gate flips at the same size (numerics/gendf.md)
    description="GenDF on CLIP ViT-B/16 (frozen) + discontinuity head, PyTorch FP32 reference",
)
register_pair(GENDF_CLIP, "GenDF on CLIP ViT-B/16, INT8 backbone + run-time INT8 activations, float head")
