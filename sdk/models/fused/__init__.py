"""The fused entry: GenDF and LFM on the same face crop, their scores combined by a rule chosen
on held-out families.

Registers ``fused-fp32`` (both PyTorch references) and ``fused-int8`` (both members' INT8
artifacts for the target, no graph of its own). The rule and the members' tensors it was measured
with are in ``weights/fused.card.json``, written by ``deepfake-sdk train fused-fp32``, which
trains both members' fold models on the same folds and keeps a rule only where it beats each
member alone on unseen families (``train.py``); the decision threshold is chosen on the held-out
real pool like every family's.

Not recommended (measured 2026-12-07 on the validation set, ``benchmarks/fusion_validation.py``):
the max rule scores AUC 0.674 against GenDF's 0.695 alone; the plain mean of margins 0.699 and the
mean of real-pool-standardised margins 0.676 do not beat GenDF by more than the set resolves
(about 0.03), and all sit far below the multi-block GenD default (0.854). It stays registered for
users who run both members, and is no default.
"""
from __future__ import annotations

from pathlib import Path

from ...zoo import CLIP_MEAN, CLIP_STD, Family, ModelSpec, Preprocessing, card_threshold, register_family, register_pair
from ..backbones import OFFLINE_CLIP

FAMILY = register_family(Family(
    name="fused",
    builder="deepfake_sdk.models.fused.model:build",
    trainer="deepfake_sdk.models.fused.train:run",
    folder=Path(__file__).resolve().parent,
    composite="deepfake_sdk.models.fused.serving:COMPOSITE",  # no graph of its own: serves its parts'
    description="fused: GenDF + LFM scores combined by a rule chosen on held-out families",
))

FUSED = ModelSpec(
    name="fused-fp32",
    family="fused",
    backbone=OFFLINE_CLIP,  # the heaviest member's; LFM trains from scratch
    weights=None,  # a rule over the members' tensors: nothing of its own to train
    precision="fp32",
    threshold=card_threshold(FAMILY.weights_dir / "fused.card.json"),
    # GenDF's (CLIP statistics); LFM's ImageNet-normalised input is an exact per-channel affine of it
    preprocessing=Preprocessing(mean=CLIP_MEAN, std=CLIP_STD),
    arch=(("parts", ("gendf-fp32", "lfm-fp32")),),
    description="GenDF + LFM, their logits combined by the held-out-chosen rule (PyTorch FP32 references); "
                "not recommended: below GenDF alone on the validation set",
)
register_pair(FUSED, "GenDF + LFM: both members' INT8 artifacts for the target, scores combined by the same rule")
