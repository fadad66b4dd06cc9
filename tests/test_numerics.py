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


def test_notes_and_trials_survive_every_refresh_and_print_below_the_table(tmp_path):
    from deepfake_sdk.verification.numerics import _kept_notes

    path = _table(tmp_path)
    record = json.loads(path.read_text())
    record.update(notes=["Why the onnx row keeps 8 layers float."], floor_trials=[{"target": "tflite", "flips": 10}],
                  unrelated="dropped")
    path.write_text(json.dumps(record))
    kept = _kept_notes(path)
    assert kept == {"notes": ["Why the onnx row keeps 8 layers float."], "floor_trials": [{"target": "tflite", "flips": 10}]}
    assert _kept_notes(path) == kept, "history survives a new release set"
    assert _kept_notes(tmp_path / "none.json") == {}
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


def _metrics(ref, cand):
    from deepfake_sdk.verification.gates import compare

    return compare(ref, cand, None, 0.5)


def test_the_release_verdict_rests_on_the_flip_rates_upper_bound_with_its_evidence_recorded():
    import numpy as np

    from deepfake_sdk.verification.gates import Gate, wilson_upper_bound
    from deepfake_sdk.verification.numerics import _flips_cells, _verdict

    policy = Gate.release()  # the 95% upper bound of the band-averaged flip rate within 2%
    ref = np.linspace(0.0, 1.0, 600)
    clean = ref + 0.001
    row = _verdict(_metrics(ref, clean), policy)
    ev = row["flip_evidence"]
    assert row["status"] == "pass" and ev["faces"] == 600 and ev["bound"] == "upper"
    assert ev["judged_rate"] == wilson_upper_bound(ev["flips_near_threshold"], 600)
    assert ev["margin"] == ev["limit"] - ev["judged_rate"] > 0
    # an error that carries every face within 0.03 of the threshold across it: ~36 faces
    far = ref.copy()
    band = np.abs(ref - 0.5) < 0.03
    far[band] = 1.0 - far[band]
    drift = _verdict(_metrics(ref, far), policy)
    assert drift["status"] == "DRIFT: flip_rate" and drift["flip_evidence"]["margin"] < 0
    cells = _flips_cells(row).split(" | ")
    assert len(cells) == 3 and cells[0].startswith(f"{ev['flips']} (") and "(+" in cells[2]


def test_one_face_on_the_threshold_moves_the_judged_rate_by_a_fraction_of_a_face():
    """The coin the old gate flipped: a face a hair from the threshold, put on either side of it by
    another CPU or thread count, moved the count by a whole face (2 vs 3 of 284)."""
    import numpy as np

    from deepfake_sdk.verification.gates import Gate

    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, 600)
    ref[0] = 0.5 + 1e-7
    cand = ref + rng.normal(0, 0.004, 600)
    one_side, other_side = cand.copy(), cand.copy()
    one_side[0], other_side[0] = 0.5 + 2e-7, 0.5 - 2e-7
    a, b = _metrics(ref, one_side), _metrics(ref, other_side)
    assert b.flips == a.flips + 1, "at the threshold itself the count moves by a face"
    averaged, at_threshold = Gate.release(), Gate.release().overridden(flip_averaged=False)
    assert abs(averaged.judged_flip_rate(b) - averaged.judged_flip_rate(a)) < 0.1 * (
        at_threshold.judged_flip_rate(b) - at_threshold.judged_flip_rate(a))


def test_the_build_gate_keeps_the_benefit_of_the_doubt_on_128_faces():
    import numpy as np

    from deepfake_sdk.verification.gates import Gate

    ref = np.linspace(0.0, 1.0, 128)
    for crossing, passes in [(3, True), (4, False)]:  # 3/128 passes, 4/128 fails at 0.95 (lower bound)
        cand = ref.copy()
        idx = np.argsort(np.abs(ref - 0.5))[:crossing]
        cand[idx] = 1.0 - cand[idx]
        checks = {c.metric: c for c in Gate.build().checks(_metrics(ref, cand))}
        assert checks["flip_rate"].passed is passes and checks["flip_rate"].judged < crossing / 128
