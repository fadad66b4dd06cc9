"""GenD's released checkpoints: ``config.json`` ``{"backbone": "<hub id>", "head": "LinearNorm"}``
with tensors ``feature_extractor.(vision_model|backbone).*`` and ``model.linear.*``, read into
:class:`~deepfake_sdk.models.gend.model.GenD` (the towers through the shared Hugging Face reader).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import ArtifactError
from ..backbones.hf import build_vit, clip_to_vit_state, infer_config, read_checkpoint, resolve_checkpoint
from .model import GenD


def load_gend_checkpoint(name_or_path: str | Path) -> GenD:
    """A released GenD model (``{"backbone": ..., "head": "LinearNorm"}`` + safetensors)."""
    folder = resolve_checkpoint(name_or_path)
    cfg, state = read_checkpoint(folder)
    if "backbone" not in cfg or "head" not in cfg:
        raise ArtifactError(f"{name_or_path}: config.json is not a GenD config (needs 'backbone' and 'head')")
    if cfg["head"] != "LinearNorm":
        raise ArtifactError(f"{name_or_path}: head {cfg['head']!r} is not supported; GenD ships 'LinearNorm'")
    clip_like = "clip" in cfg["backbone"].lower()
    if clip_like:
        vit_state = clip_to_vit_state(state, prefix="feature_extractor.vision_model.")
    elif "dino" in cfg["backbone"].lower():
        vit_state = {k[len("feature_extractor.backbone."):]: v for k, v in state.items()
                     if k.startswith("feature_extractor.backbone.")}
    else:
        raise ArtifactError(f"{name_or_path}: backbone {cfg['backbone']!r} is not supported (CLIP, DINOv2)")
    backbone = build_vit(infer_config(vit_state, clip_like), vit_state, str(name_or_path))
    model = GenD(backbone, num_classes=state["model.linear.weight"].shape[0])
    model.head.linear.load_state_dict({"weight": state["model.linear.weight"], "bias": state["model.linear.bias"]})
    return model.eval()
