"""Accuracy-aware mixed precision: when INT8 drifts, keep the most sensitive layers in float.

Target-agnostic loop; each converter supplies ``layer_sensitivity(artifact_dir, crops, model,
config)`` (per-layer SQNR in dB against float: lower is worse). ONNX measures its own QDQ graph;
the targets that name layers by PyTorch module (ExecuTorch, TFLite, Core ML, OpenVINO) share
``linear_sensitivity``, which simulates INT8 on each Linear of the float model. Steps: quantize
everything; if the parity gate fails, rank layers once and re-export with the worst 2, 4, 8, ...
kept float until the gate passes or the step budget runs out. The manifest lists what stayed
float.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ParityGate:
    """The build-time gate: does this INT8 export need mixed precision?

    It runs on the few crops set aside at build time (``api.VERIFY_SIZE``), where one face is
    0.8% of flips; so the flip rate fails only when the data show it above the limit: the
    one-sided ``flip_confidence`` Wilson lower bound exceeds ``max_flip_rate`` (3/128 passes,
    4/128 fails). ``flip_confidence=None`` compares the raw rate. The release gate
    (``parity.GatePolicy``, on a few hundred faces) compares raw rates.
    """

    min_pearson: float = 0.995
    max_flip_rate: float = 0.01
    max_auc_drop: float = 0.005
    threshold: float = 0.5
    flip_confidence: float | None = 0.95


@dataclass(frozen=True)
class ParityCheck:
    """Fake probabilities of a candidate against the float reference on the same crops."""

    pearson: float
    flip_rate: float
    auc_drop: float | None
    max_abs_diff: float
    passed: bool

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def check(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None, gate: ParityGate) -> ParityCheck:
    from deepfake_sdk.parity import compare

    m = compare(reference, candidate, labels, gate.threshold)
    flips = m.flip_rate
    if gate.flip_confidence is not None:
        flips = wilson_lower_bound(round(m.flip_rate * len(reference)), len(reference), gate.flip_confidence)
    passed = (m.pearson >= gate.min_pearson and flips <= gate.max_flip_rate
              and (m.auc_drop is None or m.auc_drop <= gate.max_auc_drop))
    return ParityCheck(m.pearson, m.flip_rate, m.auc_drop, m.max_abs_diff, passed)


def wilson_lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided lower confidence bound of a binomial rate (Wilson score interval)."""
    from statistics import NormalDist

    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(reference**2)) / noise)


def search_float_layers(
    export_with: Callable[[tuple[str, ...]], object],
    score: Callable[[object], np.ndarray],
    sensitivity: Callable[[object], dict[str, float]],
    reference: np.ndarray,
    labels: np.ndarray | None,
    gate: ParityGate = ParityGate(),
    max_steps: int = 4,
):
    """Returns ``(artifact, report)``; ``report`` has every step's parity and the float layers."""
    artifact = export_with(())
    result = check(reference, score(artifact), labels, gate)
    history = [{"float_layers": 0, **result.to_dict()}]
    ranked: list[str] = []
    k = 0
    for _ in range(max_steps):
        if result.passed:
            break
        if not ranked:
            ranked = [name for name, _ in sorted(sensitivity(artifact).items(), key=lambda kv: kv[1])]
        k = min(len(ranked), max(2, 2 * k))
        artifact = export_with(tuple(ranked[:k]))
        result = check(reference, score(artifact), labels, gate)
        history.append({"float_layers": k, **result.to_dict()})
        if k == len(ranked):
            break
    report = {"gate": asdict(gate), "passed": result.passed, "float_layers": ranked[:k] if k else [],
              "steps": history}
    return artifact, report


def linear_sensitivity(model: nn.Module, calibration: np.ndarray, config, batch: int = 8) -> dict[str, float]:
    """SQNR (dB) of each backbone Linear's output with its weights and input rounded to INT8.

    Weights: symmetric, per output channel if ``config.per_channel``. Inputs: per token when
    ``config.activations == "dynamic"``, else one asymmetric range per layer over the crops
    (as static calibration would fix it). Each layer is measured alone against its own float
    output, so the numbers rank layers by how much rounding they add, not by error inherited
    from earlier layers. Keys are module names (``backbone.encoder.layer.3.mlp.fc2``).
    """
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and name.startswith("backbone.")}
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
