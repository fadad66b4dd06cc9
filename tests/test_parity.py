"""Parity verification: metrics, the gate, the reference store, verify's exit codes and reports.

The end-to-end tests use the real gend-int8 ONNX artifact (built once per session) on the face
crops of ../shared/data, or on a labelled set written from the packaged photo when that folder
is absent, so the gate is exercised on real faces, not random tensors.
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from deepfake_sdk.cli import main
from deepfake_sdk.metrics import average_precision, detection_metrics, eer, roc_auc, tpr_at_fpr
from deepfake_sdk.errors import UsageError
from deepfake_sdk.verification.gates import Gate, compare
from deepfake_sdk.models.factory import create_model
from deepfake_sdk.verification.parity import Reference
from deepfake_sdk.zoo import get_spec


def test_detection_metrics_on_a_hand_checked_case():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    assert roc_auc(labels, scores) == pytest.approx(15 / 16)
    # precision at each positive, by descending score: 0.9 -> 1/1, 0.8 -> 2/2, 0.7 -> 3/3, 0.4 -> 4/5
    assert average_precision(labels, scores) == pytest.approx((1 + 1 + 1 + 4 / 5) / 4)
    rate, threshold = eer(labels, scores)
    assert rate == pytest.approx(0.25) and threshold in (0.6, 0.7, 0.4)
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.75)
    assert detection_metrics(np.ones(4), scores[:4]) is None  # one class: no AUC


def test_gate_passes_close_scores_and_names_every_failing_metric():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    ref = np.clip(0.5 + (labels - 0.5) * 0.8 + rng.normal(0, 0.15, 400), 0, 1)
    close = np.clip(ref + rng.normal(0, 0.002, 400), 0, 1)
    checks = Gate.release().checks(compare(ref, close, labels))
    assert checks and all(c.passed for c in checks)

    drifted = np.clip(ref + rng.normal(0, 0.15, 400), 0, 1)
    failed = {c.metric for c in Gate.release().checks(compare(ref, drifted, labels)) if not c.passed}
    assert {"pearson", "flip_rate"} <= failed

    broken = close.copy()
    broken[:3] = np.nan
    failed = {c.metric for c in Gate.release().checks(compare(ref, broken, labels)) if not c.passed}
    assert "nonfinite" in failed


def test_policy_file_and_flags(tmp_path):
    (tmp_path / "gate.toml").write_text("[gate]\nmax_flip_rate = 0.002\nmin_feature_cosine = 0.99\n")
    policy = Gate.from_file(tmp_path / "gate.toml").overridden(min_pearson=0.999)
    assert (policy.max_flip_rate, policy.min_feature_cosine, policy.min_pearson) == (0.002, 0.99, 0.999)
    (tmp_path / "bad.json").write_text(json.dumps({"max_flips": 0.1}))
    with pytest.raises(UsageError, match="unknown keys"):
        Gate.from_file(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def small_reference(parity_data, tmp_path_factory):
    """The first 48 faces only: enough to see drift, and each verify then takes seconds."""
    out = tmp_path_factory.mktemp("ref") / "small"
    assert main(["reference", "build", "gend-fp32", "--data", str(parity_data), "--out", str(out), "--limit", "48"]) == 0
    return Reference.load(out)


@pytest.fixture(scope="module")
def onnx_int8():
    from deepfake_sdk.building.build import ensure_artifact
    from deepfake_sdk.zoo import get_spec

    return ensure_artifact(get_spec("gend-int8"), "onnx", progress=False)  # the default build users get


def test_reference_stores_faces_scores_features_and_metrics(reference):
    meta = reference.meta
    assert meta["model"] == get_spec("gend-fp32").name and meta["device"] in ("cpu", "cuda")
    n = len(reference.samples)
    assert n == meta["data"]["samples"] and n >= 20
    head = create_model(get_spec(meta["model"]), pretrained=False).head  # the width of the feature it reads
    assert reference.features.shape == (n, head.linear.in_features)
    assert np.allclose(np.linalg.norm(reference.features.astype(np.float64), axis=1), 1.0, atol=1e-2)
    first = reference.samples[0]
    assert len(first["image_sha256"]) == 64 and len(json.loads(first["landmarks"])) == 5
    m = meta["metrics"]
    # held-out sources: the DINOv2 GenD is near chance there (AUC ~0.51, issue 10), so only ranges
    assert 0 <= m["auc"] <= 1 and 0 <= m["eer"] <= 1 and m["tpr_at_fpr_1"] <= m["tpr_at_fpr_5"]
    assert meta["per_source"] and sum(v["n"] for v in meta["per_source"].values()) == n


def test_gend_int8_onnx_passes_the_default_gate(reference, onnx_int8, tmp_path):
    reports = tmp_path / "reports"
    code = main(["verify", str(onnx_int8.path), "--reference", str(reference.path), "--report-dir", str(reports)])
    result = json.loads((reports / "report.json").read_text())[0]
    assert code == 0, result["failed_metrics"]
    assert result["passed"] and result["metrics"]["pearson"] >= 0.995 and result["metrics"]["flip_rate"] <= 0.01
    ev = result["flip_evidence"]  # the flip verdict's evidence: count, band average, bound, limit, margin
    assert ev["bound"] == "upper" and ev["faces"] == result["metrics"]["n"] and ev["flips"] == result["metrics"]["flips"]
    assert ev["flips_near_threshold"] is not None and ev["margin"] > 0
    assert ev["margin"] == pytest.approx(ev["limit"] - ev["judged_rate"])
    flip_check = next(c for c in result["checks"] if c["metric"] == "flip_rate")
    assert flip_check["judged"] == ev["judged_rate"] and flip_check["margin"] == pytest.approx(ev["margin"])
    assert result["metrics"]["feature_cosine_mean"] > 0.99
    assert result["inputs_identical"] == result["metrics"]["n"]  # same crops as the reference, pixel for pixel
    from deepfake_sdk.device import device_info

    assert result["checked_on"]["cpu_class"] == device_info().cpu_class and result["checked_on"]["runtime_version"]
    md = (reports / "report.md").read_text()
    assert f"CPU class {device_info().cpu_class}" in md
    assert "onnx-int8" in md and "✅ pass" in md and (reports / "scatter-onnx-int8.png").stat().st_size > 1000
    assert "upper bound of their rate" in md and f"of {ev['faces']} at the threshold" in md
    suites = ET.parse(reports / "junit.xml").getroot()
    assert suites[0].get("failures") == "0" and len(suites[0].findall("testcase")) >= 3
    props = {p.get("name"): p.get("value") for p in suites[0].find("properties")}
    assert float(props["flips.judged_rate"]) == pytest.approx(ev["judged_rate"]) and "flips.margin" in props


def _scale_patch_embedding(artifact_dir, factor: float) -> None:
    """Re-export-like damage: the (float) patch-embedding weights scaled, manifest re-signed."""
    import onnx
    from onnx import numpy_helper

    from deepfake_sdk.artifact import write_manifest

    path = artifact_dir / "model.onnx"
    graph = onnx.load(str(path))
    conv = next(n for n in graph.graph.node if n.op_type == "Conv")
    init = next(t for t in graph.graph.initializer if t.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * factor, init.name))
    onnx.save(graph, str(path))
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest.pop("files")
    manifest.pop("format_version")
    write_manifest(artifact_dir, manifest)


def test_verify_catches_a_drifted_artifact_and_names_the_metrics(small_reference, onnx_int8, tmp_path, capsys):
    drifted = tmp_path / "drifted"
    shutil.copytree(onnx_int8.path, drifted)
    _scale_patch_embedding(drifted, 1.5)
    reports = tmp_path / "reports"
    code = main(["verify", str(onnx_int8.path), str(drifted), "--reference", str(small_reference.path),
                 "--report-dir", str(reports)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 1
    assert "DRIFT" in out and "pearson" in out.split("DRIFT")[1]
    assert "48 faces cannot show a flip rate within 2.00%" in captured.err, "a set too small for the bound is named"
    good, bad = json.loads((reports / "report.json").read_text())
    assert not bad["passed"] and "pearson" in bad["failed_metrics"]
    assert bad["metrics"]["pearson"] < good["metrics"]["pearson"] - 0.01  # 48 faces: the gate on flips is coarse
    assert "❌ DRIFT" in (reports / "report.md").read_text()
    suites = ET.parse(reports / "junit.xml").getroot()
    assert int(suites[1].get("failures")) >= 1 and suites[1].find(".//failure") is not None


def test_verify_refuses_a_tampered_artifact_with_exit_2(reference, onnx_int8, tmp_path, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(onnx_int8.path, tampered)
    with open(tampered / "model.onnx", "r+b") as fh:
        fh.seek(-64, 2)
        fh.write(b"\x00" * 8)
    assert main(["verify", str(tampered), "--reference", str(reference.path)]) == 2
    assert "checksum" in capsys.readouterr().err


def test_verify_refuses_a_tampered_reference(reference, onnx_int8, tmp_path, capsys):
    ref = tmp_path / "ref"
    shutil.copytree(reference.path, ref)
    rows = (ref / "samples.csv").read_text().replace(reference.samples[0]["prob"], "0.123", 1)
    (ref / "samples.csv").write_text(rows)
    assert main(["verify", str(onnx_int8.path), "--reference", str(ref)]) == 2
    assert "cannot be trusted" in capsys.readouterr().err


def test_tightened_flags_fail_a_passing_artifact(small_reference, onnx_int8, capsys):
    code = main(["verify", str(onnx_int8.path), "--reference", str(small_reference.path), "--min-pearson", "0.999999",
                 "--max-flip-rate", "1.0"])  # flags override the defaults both ways
    out = capsys.readouterr().out
    assert code == 1 and "FAILED: pearson" in out and ">= 0.999999" in out


def test_verify_refuses_an_artifact_of_another_model_version(reference, onnx_int8, tmp_path, capsys):
    from deepfake_sdk.artifact import write_manifest

    other = tmp_path / "other"
    shutil.copytree(onnx_int8.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"]["version"] = "9.9.9"
    for key in ("files", "format_version"):
        manifest.pop(key)
    write_manifest(other, manifest)
    assert main(["verify", str(other), "--reference", str(reference.path)]) == 2
    assert "version 9.9.9" in capsys.readouterr().err


def test_sample_data_writes_a_labelled_set_whose_faces_are_found(tmp_path):
    from deepfake_sdk.training.data import build_crops

    assert main(["sample-data", str(tmp_path / "d"), "--count", "6"]) == 0
    crops = build_crops(tmp_path / "d")
    assert len(crops.samples) == 6 and not crops.skipped
    assert sorted(crops.labels().tolist()) == [0, 0, 0, 1, 1, 1]
    assert len(crops.faces[0]["landmarks"]) == 5
