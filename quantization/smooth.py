"""SmoothQuant (Xiao et al., ICML 2023) for our ViT: move activation outliers into weights.

DINOv2's LayerNorm outputs have a few channels hundreds of times larger than the rest; with one
scale per activation tensor, INT8 then spends its range on those channels and the others lose
resolution. For every Linear fed by a LayerNorm (q/k/v after ``norm1``, ``fc1`` after
``norm2``) we divide the LayerNorm's affine parameters by a per-channel ``s`` and multiply the
Linear's input columns by ``s``: the float model is unchanged, activations become flatter.
``s_j = max|X_j|^a / max|W_j|^(1-a)``, with activation maxima measured on calibration crops.
"""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def smooth(model: torch.nn.Module, calibration: np.ndarray, alpha: float = 0.5) -> torch.nn.Module:
    """Rescale ``model`` in place (returns it); outputs are unchanged up to float rounding."""
    blocks = list(model.backbone.encoder.layer)
    maxima: dict[int, torch.Tensor] = {}
    hooks = []
    for i, block in enumerate(blocks):
        for j, norm in ((2 * i, block.norm1), (2 * i + 1, block.norm2)):
            hooks.append(norm.register_forward_hook(
                lambda _m, _inp, out, j=j: maxima.__setitem__(
                    j, torch.maximum(maxima.get(j, torch.zeros(out.shape[-1])), out.abs().amax(dim=(0, 1))))))
    try:
        for k in range(0, len(calibration), 16):
            model(torch.from_numpy(calibration[k : k + 16]))
    finally:
        for h in hooks:
            h.remove()
    for i, block in enumerate(blocks):
        attn = block.attention.attention
        _fold(block.norm1, [attn.query, attn.key, attn.value], maxima[2 * i], alpha)
        _fold(block.norm2, [block.mlp.fc1], maxima[2 * i + 1], alpha)
    return model


def _fold(norm: torch.nn.LayerNorm, linears: list[torch.nn.Linear], act_max: torch.Tensor, alpha: float) -> None:
    w_max = torch.stack([lin.weight.abs().amax(dim=0) for lin in linears]).amax(dim=0)
    scale = (act_max.clamp(min=1e-5) ** alpha / w_max.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    norm.weight.div_(scale)
    norm.bias.div_(scale)
    for lin in linears:
        lin.weight.mul_(scale)
