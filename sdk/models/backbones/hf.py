"""Hugging Face-format checkpoints: ``config.json`` + ``model.safetensors``, by folder or hub id.

Supported:

* ``Dinov2Model`` checkpoints (``model_type: dinov2``), e.g. ``facebook/dinov2-small``;
* ``CLIPVisionModel`` / ``CLIPModel`` checkpoints (``clip_vision_model`` / ``clip``), e.g. GenD's
  ``openai/clip-vit-large-patch14`` (only the vision tower is read);
* GenD's released checkpoints (their towers; the whole model: ``models.gend.checkpoint``).

Hub ids resolve through ``huggingface_hub`` (the ``[hub]`` extra), honouring its cache and
``HF_HUB_OFFLINE``; nothing else of ``transformers`` is needed at run time.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from ...errors import ArtifactError, MissingDependencyError
from .vit import ViTConfig, VisionTransformer

WEIGHT_FILES = ("model.safetensors",)


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """Local folder as is; otherwise download (or find in the HF cache) ``config.json`` + weights."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if str(name_or_path).count("/") != 1 or path.exists():
        raise ArtifactError(f"{name_or_path!r} is neither a checkpoint folder nor a hub id like 'org/name'")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading {name_or_path!r} from the Hugging Face hub needs huggingface_hub: "
            "pip install 'deepfake-sdk[hub]'"
        ) from exc
    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=["config.json", "*.safetensors"]))
    except Exception as exc:  # network, auth, offline mode without a cached copy
        raise ArtifactError(
            f"could not fetch {name_or_path!r} from the hub ({type(exc).__name__}: {exc}). "
            "Download it once with network access, or pass a local folder."
        ) from exc


def read_checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ArtifactError(f"{folder} has no config.json")
    weights = [folder / w for w in WEIGHT_FILES if (folder / w).is_file()]
    if not weights:
        raise ArtifactError(f"{folder} has no model.safetensors (only safetensors checkpoints are read)")
    try:
        config = json.loads(config_file.read_text())
        return config, load_file(str(weights[0]))
    except Exception as exc:  # JSON or safetensors header errors
        raise ArtifactError(f"{folder}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def dinov2_config(cfg: dict) -> ViTConfig:
    if cfg.get("use_swiglu_ffn"):
        raise ArtifactError("DINOv2 checkpoints with SwiGLU MLPs (ViT-g) are not supported yet")
    d = cfg["hidden_size"]
    return ViTConfig(
        hidden_size=d,
        num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        intermediate_size=int(d * cfg.get("mlp_ratio", 4)),
        patch_size=cfg["patch_size"],
        pretrain_image_size=cfg["image_size"],
        layer_norm_eps=cfg.get("layer_norm_eps", 1e-6),
        hidden_act=cfg.get("hidden_act", "gelu"),
    )


def clip_config(cfg: dict) -> ViTConfig:
    cfg = cfg.get("vision_config", cfg)
    return ViTConfig(
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"],
        patch_size=cfg["patch_size"],
        pretrain_image_size=cfg["image_size"],
        layer_norm_eps=cfg.get("layer_norm_eps", 1e-5),
        hidden_act=cfg.get("hidden_act", "quick_gelu"),
        layerscale=False,
        pre_layernorm=True,
        patch_bias=False,
    )


_CLIP_RENAMES = [
    (r"^embeddings\.patch_embedding\.", "embeddings.patch_embeddings.projection."),
    (r"^pre_layrnorm\.", "pre_layernorm."),
    (r"^post_layernorm\.", "layernorm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.q_proj\.", r"encoder.layer.\1.attention.attention.query."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.k_proj\.", r"encoder.layer.\1.attention.attention.key."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.v_proj\.", r"encoder.layer.\1.attention.attention.value."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"encoder.layer.\1.norm1."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"encoder.layer.\1.norm2."),
    (r"^encoder\.layers\.(\d+)\.mlp\.", r"encoder.layer.\1.mlp."),
]


def clip_to_vit_state(state: dict[str, torch.Tensor], prefix: str = "vision_model.") -> dict[str, torch.Tensor]:
    """Rename CLIP vision tensors (under ``prefix``) into :class:`VisionTransformer` names."""
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix) :]
        if key == "embeddings.class_embedding":
            out["embeddings.cls_token"] = value.reshape(1, 1, -1)
        elif key == "embeddings.position_embedding.weight":
            out["embeddings.position_embeddings"] = value.unsqueeze(0)
        elif key == "embeddings.position_ids":
            continue
        else:
            for pattern, repl in _CLIP_RENAMES:
                key = re.sub(pattern, repl, key)
            out[key] = value
    return out


def build_vit(cfg: ViTConfig, state: dict[str, torch.Tensor], source: str) -> VisionTransformer:
    model = VisionTransformer(cfg)
    state = {k: v for k, v in state.items() if k != "embeddings.mask_token"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ArtifactError(
            f"{source}: tensors do not fit a {cfg.hidden_size}-wide ViT "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()


def load_hf_backbone(name_or_path: str | Path) -> VisionTransformer:
    """A DINOv2 or CLIP vision backbone from an HF-format checkpoint."""
    folder = resolve_checkpoint(name_or_path)
    cfg, state = read_checkpoint(folder)
    kind = cfg.get("model_type")
    if kind == "dinov2":
        return build_vit(dinov2_config(cfg), state, str(name_or_path))
    if kind in ("clip", "clip_vision_model"):
        # CLIPModel and transformers<5 CLIPVisionModel nest the tower under "vision_model.".
        prefix = "vision_model." if any(k.startswith("vision_model.") for k in state) else ""
        return build_vit(clip_config(cfg), clip_to_vit_state(state, prefix), str(name_or_path))
    raise ArtifactError(f"{name_or_path}: model_type {kind!r} is not a supported backbone (dinov2, clip)")


def infer_config(state: dict[str, torch.Tensor], clip_like: bool) -> ViTConfig:
    """Architecture from tensor shapes (GenD checkpoints do not store the backbone config).

    Heads are inferred as ``hidden / 64``, true of every CLIP and DINOv2 ViT released.
    """
    d = state["embeddings.cls_token"].shape[-1]
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k)))
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = int(round((state["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    common = dict(hidden_size=d, num_layers=layers, num_heads=d // 64,
                  intermediate_size=state["encoder.layer.0.mlp.fc1.weight"].shape[0],
                  patch_size=patch, pretrain_image_size=grid * patch)
    if clip_like:
        return ViTConfig(**common, layer_norm_eps=1e-5, hidden_act="quick_gelu", layerscale=False,
                         pre_layernorm=True, patch_bias=False)
    return ViTConfig(**common)
