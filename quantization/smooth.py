"""SmoothQuant (Xiao et al., ICML 2023): move activation outliers into weights.

ViT LayerNorm outputs (DINOv2's, CLIP's) have a few channels hundreds of times larger than the
rest; with one scale per activation tensor, INT8 then spends its range on those channels and
the others lose resolution. For every Linear fed by a LayerNorm (the pairs a model's export
hints list: in a ViT, q/k/v after a block's first norm, fc1 after its second) we divide the
LayerNorm's affine parameters by a per-channel ``s`` and multiply the Linear's input columns
by ``s``: the float model is unchanged, activations become flatter.
``s_j = max|X_j|^a / max|W_j|^(1-a)``. The activation maxima ``max|X_j|`` are the only thing
the recipe learns from faces: :func:`activation_maxima` measures them on calibration crops, and
a recorded set (``quantization.profile``) lets every machine smooth identically without data.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.contract import DetectorModel


def smoothing_pairs(model: DetectorModel) -> dict[str, list[str]]:
    """LayerNorm module name -> the Linear module names it feeds (the pairs SmoothQuant folds),
    as the model's export hints give them."""
    return model.export_hints().smoothing_pairs()


@torch.no_grad()
def activation_maxima(model: DetectorModel, calibration: np.ndarray, batch: int = 16) -> dict[str, torch.Tensor]:
    """Per-channel max |output| of every smoothed LayerNorm over ``calibration`` (N, 3, H, W)."""
    maxima: dict[str, torch.Tensor] = {}
    hooks = []
    for name in smoothing_pairs(model):
        def track(_m, _inp, out, name=name):
            peak = out.abs().amax(dim=(0, 1))
            maxima[name] = torch.maximum(maxima[name], peak) if name in maxima else peak
        hooks.append(model.get_submodule(name).register_forward_hook(track))
    try:
        for k in range(0, len(calibration), batch):
            model(torch.from_numpy(np.ascontiguousarray(calibration[k : k + batch], dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return maxima


@torch.no_grad()
def smooth(model: DetectorModel, calibration: np.ndarray | None = None, alpha: float = 0.5,
           maxima: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """Rescale ``model`` in place (returns it); outputs are unchanged up to float rounding.

    ``maxima`` (recorded activation maxima, keyed by LayerNorm name) take precedence over
    measuring them on ``calibration``.
    """
    if maxima is None:
        if calibration is None:
            raise ValueError("smooth() needs calibration crops or recorded activation maxima")
        maxima = activation_maxima(model, calibration)
    pairs = smoothing_pairs(model)
    missing = sorted(set(pairs) - set(maxima))
    if missing:
        raise ValueError(f"recorded activation maxima lack {missing[:3]}: they belong to another model")
    for norm_name, linear_names in pairs.items():
        _fold(model.get_submodule(norm_name), [model.get_submodule(n) for n in linear_names],
              maxima[norm_name].float(), alpha)
    return model


def _fold(norm: torch.nn.LayerNorm, linears: list[torch.nn.Linear], act_max: torch.Tensor, alpha: float) -> None:
    w_max = torch.stack([lin.weight.abs().amax(dim=0) for lin in linears]).amax(dim=0)
    scale = (act_max.clamp(min=1e-5) ** alpha / w_max.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    norm.weight.div_(scale)
    norm.bias.div_(scale)
    for lin in linears:
        lin.weight.mul_(scale)
