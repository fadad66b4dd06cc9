"""The recorded numerics table: refreshing some targets keeps the other rows, dated."""
from __future__ import annotations

import json
from types import SimpleNamespace

from deepfake_sdk.verification.numerics import _markdown, _merged


def _reference(manifest: str) -> SimpleNamespace:
    return SimpleNamespace(meta={"data": {"manifest_sha256": manifest}})


def _table(tmp_path, manifest: str = "abc"):
    rows = [{"target": t, "precision": "int8", "size_mb": 1.0, "status": "pass"} for t in ("onnx", "executorch")]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"reference": {"data": {"manifest_sha256": manifest}}, "rows": rows, "date": "2026-11-23"}))
    return path


def test_refreshed_rows_replace_theirs_and_the_rest_keep_their_date(tmp_path):
    fresh = [{"target": "executorch", "precision": "int8", "size_mb": 2.0, "status": "pass", "measured": "2026-12-01"}]
    rows = _merged(_table(tmp_path), _reference("abc"), fresh)
    assert [(r["target"], r["size_mb"], r["measured"]) for r in rows] == [("onnx", 1.0, "2026-11-23"),
                                                                          ("executorch", 2.0, "2026-12-01")]
    record = {"model": "m", "date": "2026-12-01", "machine": "x", "command": "c", "sdk": "0", "policy": {},
              "reference": {"model": "m", "device": "cpu", "torch": "t", "metrics": {},
                            "data": {"samples": 1, "folder": "f", "manifest_sha256": "abc"}}, "rows": rows}
    table = _markdown(record)
    assert "| onnx | int8 |" in table and "2026-11-23 |" in table and "2026-12-01 |" in table


def test_rows_measured_on_other_faces_are_dropped(tmp_path):
    fresh = [{"target": "executorch", "precision": "int8", "size_mb": 2.0, "status": "pass"}]
    assert _merged(_table(tmp_path, manifest="other"), _reference("abc"), fresh) == fresh
    assert _merged(tmp_path / "missing.json", _reference("abc"), fresh) == fresh


def test_notes_and_trials_survive_a_refresh_on_the_same_faces_and_print_below_the_table(tmp_path):
    from deepfake_sdk.verification.numerics import _kept_notes

    path = _table(tmp_path)
    record = json.loads(path.read_text())
    record.update(notes=["Why the onnx row keeps 8 layers float."], floor_trials=[{"target": "tflite", "flips": 10}],
                  unrelated="dropped")
    path.write_text(json.dumps(record))
    kept = _kept_notes(path, _reference("abc"))
    assert kept == {"notes": ["Why the onnx row keeps 8 layers float."], "floor_trials": [{"target": "tflite", "flips": 10}]}
    assert _kept_notes(path, _reference("other")) == {} and _kept_notes(tmp_path / "none.json", _reference("abc")) == {}
    page = _markdown({"model": "m", "date": "d", "machine": "x", "command": "c", "sdk": "0", "policy": {},
                      "reference": {"model": "m", "device": "cpu", "torch": "t", "metrics": {},
                                    "data": {"samples": 1, "folder": "f", "manifest_sha256": "abc"}},
                      "rows": record["rows"], **kept})
    assert page.rstrip().endswith("Why the onnx row keeps 8 layers float.")


def test_flips_near_threshold_averages_the_count_over_nearby_thresholds():
    import numpy as np

    from deepfake_sdk.verification.gates import flips_near_threshold

    reference = np.array([0.49, 0.51, 0.9, 0.1])
    assert flips_near_threshold(reference, reference, 0.5) == 0.0
    # 0.49 -> 0.51 crosses every threshold in (0.49, 0.51]: a third of the band [0.47, 0.53]
    near = flips_near_threshold(reference, np.array([0.51, 0.51, 0.9, 0.1]), 0.5)
    assert 0.2 < near < 0.45
    # an error that spans the whole band flips the face at every threshold in it
    assert flips_near_threshold(reference, np.array([0.49, 0.51, 0.9, 0.95]), 0.5) == 1.0


def test_a_row_at_the_flip_limit_is_recorded_drift_and_one_with_a_face_to_spare_passes():
    from dataclasses import replace

    import numpy as np

    from deepfake_sdk.verification.gates import Gate
    from deepfake_sdk.verification.numerics import _flip_margin, _verdict

    policy = Gate.release()  # at most 1% flips: 2 of 200 faces
    ref = SimpleNamespace(probs=np.linspace(0.0, 1.0, 200), meta={"threshold": 0.5})
    near_limit = ref.probs.copy()
    near_limit[[95, 96, 104, 105]] = 1.0 - near_limit[[95, 96, 104, 105]]  # 4 faces cross 0.5 (~2 in the band)
    spare = ref.probs.copy()
    spare[100] = 0.49  # one face just over the threshold moves under it
    metrics = SimpleNamespace(**dict.fromkeys(["pearson", "spearman", "flip_rate", "auc", "auc_drop", "eer_increase",
                                               "p99_abs_diff", "max_abs_diff", "feature_cosine_mean", "nonfinite"]))
    drift = _verdict(metrics, [], _flip_margin(ref, near_limit, policy))
    assert drift["status"] == "DRIFT: flip_margin" and drift["flip_margin"]["most"] == 1.0
    assert drift["flip_margin"]["flips_near_threshold"] > 1.0
    assert _verdict(metrics, [], _flip_margin(ref, spare, policy))["status"] == "pass"
    assert "flip_margin" not in _verdict(metrics, [], _flip_margin(ref, spare, replace(policy, max_flip_rate=None)))
