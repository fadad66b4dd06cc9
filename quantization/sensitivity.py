"""Per-layer INT8 sensitivity: which layers to keep float when an INT8 build drifts.

Each converter supplies ``layer_sensitivity(artifact_dir, crops, model, config)`` (per-layer
SQNR in dB against float: lower is worse). ONNX's static recipe measures its own QDQ graph; the
targets that name layers by PyTorch module (ExecuTorch, TFLite, Core ML, OpenVINO, ONNX's
run-time recipe) share :func:`linear_sensitivity`, which simulates INT8 on each Linear of the
float model's quantized part (``export_hints().quantized``). The search that uses the ranking,
re-exporting with the worst layers float until the build gate passes, is ``export``'s.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.contract import DetectorModel


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(reference**2)) / noise)


def linear_sensitivity(model: DetectorModel, calibration: np.ndarray, config, batch: int = 8) -> dict[str, float]:
    """SQNR (dB) of each quantized Linear's output with its weights and input rounded to INT8.

    Weights: symmetric, per output channel if ``config.per_channel``. Inputs: per token when
    ``config.activations == "dynamic"``, else one asymmetric range per layer over the crops
    (as static calibration would fix it). Each layer is measured alone against its own float
    output, so the numbers rank layers by how much rounding they add, not by error inherited
    from earlier layers. Keys are module names (``backbone.encoder.layer.3.mlp.fc2``).
    """
    hints = model.export_hints()
    layers = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and hints.inside(name)}
    pixels = torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
    ranges = {} if config.activations == "dynamic" else _input_ranges(model, layers, pixels, batch)
    signal = dict.fromkeys(layers, 0.0)
    noise = dict.fromkeys(layers, 0.0)

    def measure(name):
        def hook(module, inputs, output):
            x = inputs[0]
            xq = _round_per_token(x) if not ranges else _round_range(x, *ranges[name])
            y = nn.functional.linear(xq, _round_weight(module.weight, config.per_channel), module.bias)
            signal[name] += float(output.double().pow(2).sum())
            noise[name] += float((output - y).double().pow(2).sum())
        return hook

    _run_with_hooks(model, layers, measure, pixels, batch)
    return {name: (float("inf") if noise[name] == 0 else 10.0 * float(np.log10(signal[name] / noise[name])))
            for name in layers}


def _run_with_hooks(model: nn.Module, layers: dict[str, nn.Module], make_hook, pixels: torch.Tensor, batch: int):
    handles = [m.register_forward_hook(make_hook(name)) for name, m in layers.items()]
    try:
        with torch.no_grad():
            for i in range(0, len(pixels), batch):
                model(pixels[i : i + batch])
    finally:
        for h in handles:
            h.remove()


def _input_ranges(model, layers, pixels, batch) -> dict[str, tuple[float, float]]:
    ranges: dict[str, tuple[float, float]] = {}

    def track(name):
        def hook(module, inputs, output):
            lo, hi = ranges.get(name, (0.0, 0.0))
            ranges[name] = (min(lo, float(inputs[0].min())), max(hi, float(inputs[0].max())))
        return hook

    _run_with_hooks(model, layers, track, pixels, batch)
    return ranges


def _round_range(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return _round_u8(x, torch.tensor(lo), torch.tensor(hi))


def _round_per_token(x: torch.Tensor) -> torch.Tensor:
    return _round_u8(x, x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0))


def _round_u8(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Asymmetric 8-bit fake quantization of ``x`` over ``[lo, hi]`` (which contain 0)."""
    scale = (hi - lo).clamp(min=1e-12) / 255.0
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _round_weight(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    peak = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max()
    scale = peak.clamp(min=1e-12) / 127.0
    return torch.clamp(torch.round(w / scale), -127, 127) * scale
