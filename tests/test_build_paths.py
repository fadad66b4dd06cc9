"""Every branch device selection can take elsewhere, taken here on a tiny model (issue 9).

A build path that only one kind of CPU takes (OpenVINO on an Intel Xeon, once) must not wait
for that CPU to break: each runnable target's full ``load()`` build — calibration, export, build
gate, mixed-precision search, manifest, cache hit — runs in the default suite, whichever target
this machine would pick, and the device table is walked class by class.
"""
from __future__ import annotations

import importlib
import json
import warnings

import numpy as np
import pytest

import deepfake_sdk
from deepfake_sdk import device
from deepfake_sdk.artifact import write_manifest
from deepfake_sdk.errors import ParityGateError, ParityWarning
from deepfake_sdk.jsonio import is_plain
from deepfake_sdk.verification.gates import Gate
from deepfake_sdk.quantization import config_for
from deepfake_sdk.zoo import get_spec, list_models
from deepfake_sdk.runtimes.base import runtime_class
from deepfake_sdk.targets import TARGETS

from tinymodel import register

TINY = register()
RUNNABLE = [t for t in TARGETS if TARGETS[t].predicts_on_linux and runtime_class(t).is_available()]
UNREACHABLE = Gate.build().overridden(min_pearson=1.01)  # no build can pass: forces every mixed-precision step


def test_manifest_writer_converts_numpy_and_refuses_the_rest(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"x")
    written = write_manifest(tmp_path, {"passed": np.bool_(False), "pearson": np.float32(0.5),
                                        "count": np.int64(3), "layers": ("a", "b"), "nan": float("nan")})
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == written and is_plain(on_disk)
    assert on_disk["passed"] is False and on_disk["count"] == 3 and on_disk["nan"] is None
    with pytest.raises(TypeError, match=r"\$\.bad: object"):
        write_manifest(tmp_path, {"bad": object()})


@pytest.mark.parametrize("target", RUNNABLE)
def test_load_builds_gates_and_caches_on_every_target(target, samples, monkeypatch):
    with pytest.warns(ParityWarning, match="missed its build gate") as caught:
        det = deepfake_sdk.load(TINY, target=target, progress=False, gate=UNREACHABLE)
    message = next(str(w.message) for w in caught if w.category is ParityWarning)
    assert "Pearson" in message and "flips" in message
    manifest = det.artifact.manifest
    on_disk = json.loads((det.artifact.path / "manifest.json").read_text())
    assert is_plain(manifest) and on_disk == manifest, "every manifest value is plain JSON"
    report = manifest["mixed_precision"]
    floor = config_for("int8", target).min_float_layers
    steps = [s["float_layers"] for s in report["steps"]]
    assert report["passed"] is False and report["floor"] == floor
    if floor:  # the target's always-float layers come first, then the search doubles them
        assert steps[0] == floor and steps == sorted(set(steps)) and len(steps) >= 2
    else:
        assert steps == [0, 2, 4, 8]
    assert len(report["float_layers"]) == steps[-1] and manifest["recipe"]["float_layers"] == report["float_layers"]
    assert report["checked_on"]["cpu_class"] == device.device_info().cpu_class
    assert report["checked_on"]["runtime"] == runtime_class(target).version()
    assert report["gate_faces"]["size"] == 128 and report["near_threshold"]["of"] == 128
    assert manifest["calibration"]["size"] == 64
    assert det.predict(samples / "astronaut.jpg").label in ("real", "fake")

    import deepfake_sdk.building.export as export_module

    monkeypatch.setattr(export_module, "export", lambda *a, **k: pytest.fail("a cached artifact was rebuilt"))
    with pytest.warns(ParityWarning):  # the warning comes with every load, not only the build
        again = deepfake_sdk.load(TINY, target=target, progress=False, gate=UNREACHABLE)
    assert again.artifact.path == det.artifact.path
    with pytest.raises(ParityGateError, match="strict"):
        deepfake_sdk.load(TINY, target=target, progress=False, gate=UNREACHABLE, strict=True)


CLASSES = {
    "amx": device.DeviceInfo("Linux", "x86_64", "GenuineIntel", 2, frozenset({"avx2", "avx512_vnni", "amx_int8"})),
    "avx512-vnni": device.DeviceInfo("Linux", "x86_64", "AuthenticAMD", 2, frozenset({"avx2", "avx512_vnni"})),
    "avx2": device.DeviceInfo("Linux", "x86_64", "AuthenticAMD", 2, frozenset({"avx2"})),
    "x86-baseline": device.DeviceInfo("Linux", "x86_64", "GenuineIntel", 2, frozenset()),
    "neon-dot": device.DeviceInfo("Linux", "aarch64", "", 2, frozenset({"asimd", "asimddp"})),
    "apple": device.DeviceInfo("Darwin", "arm64", "Apple", 8, frozenset({"asimd", "asimddp"})),
}


@pytest.mark.parametrize("cpu_class", list(CLASSES))
def test_each_cpu_class_picks_from_its_order_and_builds(cpu_class, monkeypatch, samples):
    monkeypatch.delenv("DEEPFAKE_SDK_TARGET", raising=False)
    info = CLASSES[cpu_class]
    assert info.cpu_class == cpu_class
    monkeypatch.setattr(device, "device_info", lambda: info)
    expected = next(t for t in device.preference(info) if t in RUNNABLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParityWarning)  # a random tiny model may miss the default gate
        det = deepfake_sdk.load(TINY, progress=False)
    assert det.artifact.target == expected
    assert det.artifact.manifest["mixed_precision"]["gate_faces"]["shared_sources_with_calibration"] == \
        ["packaged:astronaut"], "a model without a recorded profile says its gate photo also calibrated it"
    assert det.predict(samples / "astronaut_face.jpg").score is not None


def test_doctor_names_cpu_features_and_order(capsys):
    from deepfake_sdk.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    info = device.device_info()
    assert f"class {info.cpu_class}" in out and ("measured" in out or "assumed" in out)
    assert "evidence:" in out and "cached artifacts" in out


def test_doctor_shows_a_build_that_missed_its_gate(capsys):
    from deepfake_sdk.cli import main

    with pytest.warns(ParityWarning):
        deepfake_sdk.load(TINY, target=RUNNABLE[0], progress=False, gate=UNREACHABLE)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "GATE MISSED" in out and "one face is 0.8% of them" in out and "deepfake-sdk verify" in out
    assert "release: not recorded" in out, "a tiny test model has no numerics record"


def test_doctor_states_each_builds_recorded_release_verdict_with_its_bound():
    """The recorded verdict of a shipped model on its target, with the flips on the release faces
    and the 95% upper bound of their rate (what one count of a few hundred faces can still hide)."""
    from deepfake_sdk.artifact import Artifact
    from deepfake_sdk.cli import release_verdict
    from deepfake_sdk.zoo import recorded_numerics

    spec = get_spec("gend-int8")
    row = recorded_numerics(spec)["onnx"]
    artifact = Artifact(path=None, manifest={"model": {"name": spec.base_name}, "precision": "int8", "target": "onnx"})
    text = release_verdict(artifact)
    ev = row["flip_evidence"]
    assert text.startswith(f"release: {row['status']}, {ev['flips']}/{ev['faces']} flips (")
    assert f"95% upper bound {ev['judged_rate']:.2%} of {ev['limit']:.0%} allowed" in text and row["cpu_class"] in text
    other = Artifact(path=None, manifest={"model": {"name": "tinygend"}, "precision": "int8", "target": "onnx"})
    assert release_verdict(other) == "release: not recorded"


def test_the_wilson_bounds_bracket_the_observed_rate():
    from deepfake_sdk.verification.gates import wilson_lower_bound, wilson_upper_bound

    assert wilson_upper_bound(0, 284) == pytest.approx(0.0094, abs=5e-4), "0 of 284 still allows ~0.9%"
    assert wilson_upper_bound(2, 284) == pytest.approx(0.0214, abs=5e-4)
    for k, n in [(0, 128), (3, 128), (5, 500), (40, 40)]:
        assert wilson_lower_bound(k, n, 0.95) <= k / n <= wilson_upper_bound(k, n)
    assert wilson_upper_bound(3, 500) < wilson_upper_bound(2, 284), "more faces, a tighter bound at a similar rate"


def test_shipped_models_have_a_recorded_profile_disjoint_from_their_gate_faces():
    from deepfake_sdk.building.build import VERIFY_SIZE
    from deepfake_sdk.quantization.calibration import build_sets

    for name in list_models("*-int8"):
        spec = get_spec(name)
        if spec.weights is None or not spec.weights_path.is_file():
            continue  # registered, not shipped (gend-lite-dinov2-s14: `deepfake-sdk distill` writes it)
        sets = build_sets(None, 8, VERIFY_SIZE, spec.preprocessing, spec.weights_path)
        assert sets.calibration.smooth_maxima is not None, f"{name}: no calibration profile shipped"
        assert sets.shared_sources() == [], name
        assert "pkg_skimage" in sets.gate.sources and "pkg_skimage" not in sets.calibration.faces_used()


def test_a_data_folder_is_split_by_source_into_calibration_and_gate(tmp_path):
    from deepfake_sdk.quantization.calibration import build_sets, split_sources, write_packaged_set
    from deepfake_sdk.training.data import holdout_folder
    from deepfake_sdk.zoo import get_spec

    pp = get_spec("gend-fp32").preprocessing
    folder = write_packaged_set(tmp_path / "data", 16, pp)
    sets = build_sets(folder, 4, 6, pp)
    assert set(sets.calibration.sources).isdisjoint(sets.gate.sources) and sets.shared_sources() == []
    assert len(sets.calibration.crops) == 4 and len(sets.gate.crops) == 6
    counts = {f"s{i}": 10 * (i + 1) for i in range(9)}
    calib, gate = split_sources(counts, 100)
    assert calib.isdisjoint(gate) and calib | gate == set(counts) and split_sources(counts, 100) == (calib, gate)
    assert 100 <= sum(counts[s] for s in gate) <= sum(counts.values()) / 2 + max(counts.values())
    assert sum(counts[s] for s in calib) >= sum(counts.values()) / 2 - max(counts.values())

    (folder / "manifest_extra.csv").write_text((folder / "manifest.csv").read_text())
    held = holdout_folder(folder, per_source=3)
    rows = (held / "manifest.csv").read_text().splitlines()[1:]
    assert len(rows) == 6 and all(r.startswith(str(folder.resolve())) for r in rows)


def test_the_release_set_tops_up_the_extra_sources_with_generated_ones_and_shares_none_with_calibration(tmp_path):
    import csv

    from deepfake_sdk.quantization.calibration import write_packaged_set
    from deepfake_sdk.training.data import RELEASE_PER_SOURCE, RELEASE_TOP_UP_PER_SOURCE, release_folder
    from deepfake_sdk.zoo import get_spec

    folder = write_packaged_set(tmp_path / "data", 8, get_spec("gend-fp32").preprocessing)
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    header = list(rows[0])

    def write(name, source, n):
        with open(folder / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows({**rows[i % len(rows)], "source": source} for i in range(n))

    write("manifest_extra.csv", "extra_a", RELEASE_PER_SOURCE + 10)
    write("manifest_generated.csv", "gen_b", RELEASE_TOP_UP_PER_SOURCE + 3)
    picked = list(csv.DictReader(open(release_folder(folder) / "manifest.csv")))
    by = {s: sum(r["source"] == s for r in picked) for s in ("extra_a", "gen_b")}
    assert by == {"extra_a": RELEASE_PER_SOURCE, "gen_b": RELEASE_TOP_UP_PER_SOURCE}
    assert release_folder(folder) == release_folder(folder), "one folder per manifest version"


def test_the_shipped_release_set_has_500_faces_from_sources_no_calibration_or_validation_uses(maybe_shared_data):
    """Issue 31: one face at most 0.2% of the release set, none from a calibration source (manifest.csv)
    or from the validation set (nothing is gated on it). Rows here; the slow gate counts faces."""
    import csv

    from deepfake_sdk.training.data import release_folder

    if maybe_shared_data is None or not (maybe_shared_data / "manifest_extra.csv").is_file():
        pytest.skip("needs ../shared/data with manifest_extra.csv")
    picked = list(csv.DictReader(open(release_folder(maybe_shared_data) / "manifest.csv")))
    sources = {r["source"] for r in picked}
    assert len(picked) >= 600 and len(sources) >= 50
    for other in ("manifest.csv", "manifest_validation.csv"):
        if (maybe_shared_data / other).is_file():
            assert not sources & {r["source"] for r in csv.DictReader(open(maybe_shared_data / other))}, other


def test_export_without_calibration_or_gate_uses_the_recorded_profile(tmp_path):
    """``deepfake-sdk export gend-int8 --target onnx`` (no --calibration, no --verify)."""
    from deepfake_sdk.quantization.calibration import calibration_set
    from deepfake_sdk.zoo import get_spec

    spec = get_spec("gend-int8")
    calib = calibration_set(None, 8, spec.preprocessing, spec.weights_path)
    assert len(calib.crops) == 8 and calib.smooth_maxima is not None and "pkg_skimage" not in calib.faces_used()


def test_artifact_cache_key_follows_the_exporter_code(monkeypatch):
    """A cached artifact written by other converter code is not served (a stale cache once gave a
    float "INT8" OpenVINO build after the converter was fixed)."""
    export_module = importlib.import_module("deepfake_sdk.building.export")  # the package name `export` is the function
    spec = get_spec("gend-lite-int8")
    recipe = config_for("int8", "onnx", spec.int8_activations)
    before = export_module.recipe_key(spec, "onnx", recipe, None)
    assert export_module.exporter_fingerprint("onnx") != export_module.exporter_fingerprint("openvino")
    monkeypatch.setattr(export_module, "exporter_fingerprint", lambda target: "other-code")
    assert export_module.recipe_key(spec, "onnx", recipe, None) != before


def test_artifact_cache_key_follows_the_model_code(monkeypatch):
    """Same weights, other model code (a pad moved into its conv): another graph, so a rebuild."""
    export_module = importlib.import_module("deepfake_sdk.building.export")
    spec = get_spec("gend-lite-int8")
    recipe = config_for("int8", "tflite", spec.int8_activations)
    before = export_module.recipe_key(spec, "tflite", recipe, None)
    assert len(export_module.model_code_fingerprint()) == 16
    monkeypatch.setattr(export_module, "model_code_fingerprint", lambda: "other-model-code")
    assert export_module.recipe_key(spec, "tflite", recipe, None) != before


def test_a_model_can_ask_a_target_for_a_float_floor():
    """GenDF asks ONNX for its 8 most sensitive Linears float and LiteRT for 16 (its all-INT8 CLIP
    flipped held-out faces near its threshold there); other targets, and models that ask nothing,
    keep each row's."""
    from deepfake_sdk.targets import TARGETS
    from deepfake_sdk.zoo import get_spec

    gendf, gend = get_spec("gendf-int8"), get_spec("gend-int8")
    asks = {"onnx": 8, "tflite": 16}
    assert dict(gendf.int8_float_floor) == asks and gend.int8_float_floor == ()
    for target in ("onnx", "openvino", "executorch", "tflite"):
        row = TARGETS[target].int8_min_float_layers
        asked = config_for("int8", target, **gendf.int8_recipe_overrides(target)).min_float_layers
        assert asked == asks.get(target, row)
        assert config_for("int8", target, **gend.int8_recipe_overrides(target)).min_float_layers == row


def test_gendf_asks_openvino_alone_for_asymmetric_int8_weights():
    """GenDF's OpenVINO weights take a zero point per channel (its symmetric INT8 flipped a third
    held-out face); every other target, and every model that asks nothing, keeps symmetric."""
    from deepfake_sdk.zoo import get_spec

    gendf, gend = get_spec("gendf-int8"), get_spec("gend-int8")
    for target in ("onnx", "openvino", "executorch", "tflite", "coreml"):
        asked = config_for("int8", target, **gendf.int8_recipe_overrides(target)).weight_symmetric
        assert asked is (target != "openvino")
        assert config_for("int8", target, **gend.int8_recipe_overrides(target)).weight_symmetric is True
    assert config_for("int8", "openvino", **gendf.int8_recipe_overrides("openvino")).key() != \
        config_for("int8", "openvino").key(), "a different recipe is a different cached artifact"
