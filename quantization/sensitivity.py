"""Accuracy-aware mixed precision: when INT8 drifts, keep the most sensitive layers in float.

Target-agnostic loop; each converter supplies ``layer_sensitivity(artifact, crops)`` (per-layer
SQNR in dB of its quantized input against float: lower is worse). Steps: quantize everything;
if the parity gate fails, rank layers once and re-export with the worst 2, 4, 8, ... kept float
until the gate passes or the step budget runs out. The manifest lists what stayed float.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np



@dataclass(frozen=True)
class ParityGate:
    min_pearson: float = 0.995
    max_flip_rate: float = 0.01
    max_auc_drop: float = 0.005
    threshold: float = 0.5


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
    passed = (m.pearson >= gate.min_pearson and m.flip_rate <= gate.max_flip_rate
              and (m.auc_drop is None or m.auc_drop <= gate.max_auc_drop))
    return ParityCheck(m.pearson, m.flip_rate, m.auc_drop, m.max_abs_diff, passed)


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
