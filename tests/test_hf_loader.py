"""HF-format checkpoints (DINOv2, CLIP, GenD releases) load into our ViT and match the
reference implementation in transformers, from a folder and from a hub id via the HF cache."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from deepfake_sdk.errors import ArtifactError  # noqa: E402
from deepfake_sdk.models.backbones.hf import load_hf_backbone  # noqa: E402
from deepfake_sdk.models.gend.checkpoint import load_gend_checkpoint  # noqa: E402

PIXELS = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))


def tiny_dinov2(path):
    cfg = transformers.Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    mlp_ratio=2, patch_size=14, image_size=98)
    torch.manual_seed(0)
    model = transformers.Dinov2Model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lambda1" in name or "norm" in name:
                p.uniform_(0.5, 1.5)
            if name.endswith("position_embeddings") or name.endswith("cls_token"):
                p.normal_()
    model.save_pretrained(path, safe_serialization=True)
    return model


def tiny_clip_vision(path):
    # head size 64, like every released CLIP/DINOv2 (GenD checkpoints infer heads from it)
    cfg = transformers.CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=2, patch_size=14, image_size=56)
    torch.manual_seed(0)
    model = transformers.CLIPVisionModel(cfg).eval()
    model.save_pretrained(path, safe_serialization=True)
    return model


def test_dinov2_folder_matches_transformers(tmp_path):
    ref = tiny_dinov2(tmp_path)
    ours = load_hf_backbone(tmp_path)
    with torch.no_grad():
        expected = ref(pixel_values=PIXELS).last_hidden_state
        got = ours.forward_tokens(PIXELS)
    # 56 px input from a 98 px position grid: exercises the bicubic interpolation
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_clip_vision_folder_matches_transformers(tmp_path):
    ref = tiny_clip_vision(tmp_path)
    ours = load_hf_backbone(tmp_path)
    with torch.no_grad():
        assert torch.allclose(ours(PIXELS), ref(pixel_values=PIXELS).pooler_output, atol=1e-5)


def test_gend_release_format(tmp_path):
    """A GenD checkpoint: {"backbone", "head": "LinearNorm"} + feature_extractor.* tensors."""
    ref = tiny_clip_vision(tmp_path / "clip")
    torch.manual_seed(1)
    head = torch.nn.Linear(128, 2)
    tower = getattr(ref, "vision_model", ref)  # transformers<5 nests the tower
    state = {f"feature_extractor.vision_model.{k}": v for k, v in tower.state_dict().items()
             if not k.startswith("vision_model.")}
    state.update({"model.linear.weight": head.weight.detach(), "model.linear.bias": head.bias.detach()})
    from safetensors.torch import save_file

    folder = tmp_path / "gend"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"backbone": "openai/clip-vit-large-patch14", "head": "LinearNorm",
                                                    "model_type": "GenD"}))
    model = load_gend_checkpoint(folder)
    with torch.no_grad():
        expected = head(F.normalize(ref(pixel_values=PIXELS).pooler_output, dim=-1))
        assert torch.allclose(model(PIXELS), expected, atol=1e-5)


def test_hub_id_resolves_through_hf_cache(tmp_path, monkeypatch):
    """Real hub code path, offline: a snapshot laid out as huggingface_hub's cache."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--tiny-org--tiny-dinov2" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    ref = tiny_dinov2(snapshot)
    (cache / "models--tiny-org--tiny-dinov2" / "refs").mkdir()
    (cache / "models--tiny-org--tiny-dinov2" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)
    try:
        ours = load_hf_backbone("tiny-org/tiny-dinov2")
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)
    with torch.no_grad():
        assert torch.allclose(ours(PIXELS), ref(pixel_values=PIXELS).pooler_output, atol=1e-4)


def test_unknown_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="neither a checkpoint folder nor a hub id"):
        load_hf_backbone(tmp_path / "nope" / "deeper" / "x")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ArtifactError):
        load_hf_backbone(tmp_path)
