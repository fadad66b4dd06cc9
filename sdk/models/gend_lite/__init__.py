"""The GenD-Lite family: phone-size students distilled from a GenD teacher (every weight trained).

Registers the students (no torch import): ``gend-lite-efficientnet-lite0-*`` (the phone model;
``gend-lite-fp32`` / ``gend-lite-int8``), ``gend-lite-efficientnet-lite2-*`` (the wider, deeper
CNN compared with it) and ``gend-lite-dinov2-s14-*`` (a mid-size ViT student).
The model is in ``model.py``, the distillation recipe in ``distill.py``, the distilled tensors
and their card in ``weights/``, recorded numerics in ``numerics/``.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import Family, ModelSpec, card_threshold, register_alias, register_family, register_pair
from ..backbones import EFFICIENTNET_LITE0, EFFICIENTNET_LITE2, OFFLINE_DINOV2

FAMILY = register_family(Family(
    name="gend-lite",
    builder="deepfake_sdk.models.gend_lite.model:build",
    trainer="deepfake_sdk.models.gend_lite.distill:run",
    distiller="deepfake_sdk.models.gend_lite.distill:distill",
    folder=Path(__file__).resolve().parent,
    description="GenD-Lite: a CNN or small ViT student distilled from a GenD teacher, L2 + linear head",
))

# The CNN students' INT8 activation scheme (ModelSpec.int8_activations / int8_activations_on).
# Core ML's INT8 is W8A8 with static ranges whatever the recipe says; its manifest says so too.
STUDENT_ACTIVATIONS, STUDENT_ACTIVATIONS_ON = "dynamic", (("tflite", "float"), ("coreml", "static"))

_LITE0_CARD = FAMILY.weights_dir / "gend_lite_efficientnet_lite0.card.json"
EFFICIENTNET_STUDENT = ModelSpec(
    name="gend-lite-efficientnet-lite0-fp32",
    family="gend-lite",
    backbone=EFFICIENTNET_LITE0,
    weights="gend_lite_efficientnet_lite0.safetensors",  # INT8 per channel + FP16 stem (3.6 MB); `deepfake-sdk distill` rewrites it
    precision="fp32",
    threshold=card_threshold(_LITE0_CARD),  # 5% false positives on the card's held-out real faces
    description="GenD-Lite: EfficientNet-Lite0 distilled from GenD CLIP ViT-B/16, PyTorch FP32 reference",
    # INT8 weights on every target, on the grid the stored weights already lie on. Activations:
    # quantized per image at run time on ExecuTorch (XNNPACK's qd8 convolutions); ONNX Runtime
    # and OpenVINO run the convolutions in float on INT8-stored weights under that same recipe;
    # LiteRT asks for "float" outright (its run-time hybrid kernels flipped 10). Release gate,
    # 615 faces, flips with static INT8 -> this recipe: ExecuTorch 10 -> 1, ONNX 26 -> 0,
    # OpenVINO 12 -> 0, LiteRT 12 -> 1 (numerics/gend-lite-efficientnet-lite0.md).
    int8_activations=STUDENT_ACTIVATIONS,
    int8_activations_on=STUDENT_ACTIVATIONS_ON,
)
register_pair(EFFICIENTNET_STUDENT, "GenD-Lite EfficientNet-Lite0, INT8 weights (run-time activations; float arithmetic on LiteRT), float head")
register_alias("gend-lite-fp32", EFFICIENTNET_STUDENT.name)
register_alias("gend-lite-int8", f"{EFFICIENTNET_STUDENT.base_name}-int8")

_LITE2_CARD = FAMILY.weights_dir / "gend_lite_efficientnet_lite2.card.json"
LITE2_STUDENT = ModelSpec(
    name="gend-lite-efficientnet-lite2-fp32",
    family="gend-lite",
    backbone=EFFICIENTNET_LITE2,
    weights="gend_lite_efficientnet_lite2.safetensors",  # `deepfake-sdk distill --student efficientnet-lite2`
    precision="fp32",
    threshold=card_threshold(_LITE2_CARD),
    description="GenD-Lite: EfficientNet-Lite2 distilled from the default GenD, PyTorch FP32 reference",
    int8_activations=STUDENT_ACTIVATIONS,
    int8_activations_on=STUDENT_ACTIVATIONS_ON,
)
register_pair(LITE2_STUDENT, "GenD-Lite EfficientNet-Lite2, INT8 weights (run-time activations; float arithmetic on LiteRT), float head")

DINOV2_STUDENT = ModelSpec(
    name="gend-lite-dinov2-s14-fp32",
    family="gend-lite",
    backbone=OFFLINE_DINOV2,
    weights="gend_lite_dinov2_s14.safetensors",  # not shipped (88 MB): `deepfake-sdk distill --student dinov2-s14`
    precision="fp32",
    description="GenD-Lite: DINOv2 ViT-S/14 fully fine-tuned by distillation from GenD CLIP ViT-B/16",
)
register_pair(DINOV2_STUDENT, "GenD-Lite DINOv2 ViT-S/14, INT8 weights + run-time INT8 activations, float head")
