"""The mixed-precision loop keeps the most sensitive layers float until the gate passes."""
from __future__ import annotations

import numpy as np

from deepfake_sdk.quantization.sensitivity import ParityGate, check, search_float_layers, sqnr_db

REF = np.linspace(0.05, 0.95, 200)
LAYERS = {f"layer{i}": float(i) for i in range(10)}  # layer0 is the most damaged (lowest SQNR)


def _export(float_layers):
    # each layer still quantized among the 3 worst adds noise; keeping them float removes it
    noisy = [f"layer{i}" for i in range(3) if f"layer{i}" not in float_layers]
    return {"float": float_layers, "noise": 0.08 * len(noisy)}


def _score(artifact):
    rng = np.random.default_rng(0)
    return np.clip(REF + rng.normal(0, artifact["noise"] + 1e-4, REF.shape), 0, 1)


def test_search_stops_as_soon_as_the_gate_passes():
    calls = []
    artifact, report = search_float_layers(_export, _score, lambda a: calls.append(1) or LAYERS, REF, None)
    assert report["passed"]
    assert report["float_layers"] == ["layer0", "layer1", "layer2", "layer3"]  # 2 was not enough
    assert [s["float_layers"] for s in report["steps"]] == [0, 2, 4]
    assert len(calls) == 1, "sensitivity is measured once"
    assert not report["steps"][0]["passed"]


def test_search_reports_failure_when_budget_runs_out():
    _, report = search_float_layers(_export, _score, lambda a: {"layer9": 0.0}, REF, None, max_steps=3)
    assert not report["passed"] and report["float_layers"] == ["layer9"]


def test_check_and_sqnr():
    labels = (REF > 0.5).astype(int)
    ok = check(REF, REF, labels, ParityGate())
    assert ok.passed and ok.pearson > 0.9999 and ok.flip_rate == 0 and ok.auc_drop == 0
    flipped = check(REF, 1 - REF, labels, ParityGate())
    assert not flipped.passed and flipped.flip_rate > 0.9
    assert sqnr_db(np.ones(4), np.ones(4)) == float("inf")
    assert abs(sqnr_db(np.ones(100), np.ones(100) * 1.1) - 20.0) < 1e-6
