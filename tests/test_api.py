"""The front door on a shipped model: load(name).predict(image) -> Prediction.

These drive the small shipped variant (GenD on DINOv2 ViT-S/14: its INT8 build takes a minute
and passes the build gate on every target) so the default suite stays fast on 2 cores; the
default alias (``gend-int8``, GenD on CLIP ViT-B/16) is gated on every target by
tests/test_parity_slow.py and in its ONNX row by tests/test_parity.py."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import deepfake_sdk
from deepfake_sdk.errors import ArtifactError, InvalidImageError, MissingDependencyError, UnknownModelError


SMALL = "gend-dinov2-s14"


@pytest.fixture(scope="module")
def fp32():
    return deepfake_sdk.load(f"{SMALL}-fp32")


@pytest.fixture(scope="module")
def int8():
    # Built on first use into the test session's private cache, on whichever target this CPU (or
    # $DEEPFAKE_SDK_TARGET) picks, from the recorded calibration profile: no data folder needed.
    return deepfake_sdk.load(f"{SMALL}-int8", progress=False, strict=True)


def test_fp32_predicts_a_face(fp32, samples):
    pred = fp32.predict(samples / "astronaut.jpg")
    assert 0.0 <= pred.score <= 1.0 and pred.label in ("real", "fake")
    assert pred.model == deepfake_sdk.get_spec(f"{SMALL}-fp32").name and pred.runtime == "pytorch" and pred.latency_ms > 0
    assert len(pred.faces) == 1 and pred.box == pred.faces[0].box
    assert pred.to_dict()["faces"][0]["score"] == pred.score


def test_no_face_is_a_result_not_an_exception(fp32, samples):
    pred = fp32.predict(samples / "cat_no_face.jpg")
    assert pred.label == "no_face" and pred.score is None and not pred.face_found


def test_bad_image_is_a_clear_error(fp32, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InvalidImageError, match="bad.png"):
        fp32.predict(bad)


def test_inputs_of_every_kind_agree(fp32, samples):
    path = samples / "astronaut_face.jpg"
    scores = [fp32.predict(src).score for src in
              (path, path.read_bytes(), Image.open(path), np.asarray(Image.open(path).convert("RGB")))]
    assert max(scores) - min(scores) < 1e-6
    batch = fp32.predict_batch([path, samples / "cat_no_face.jpg"])
    assert [p.label == "no_face" for p in batch] == [False, True]


def test_int8_tracks_fp32_on_samples(int8, fp32, samples):
    from deepfake_sdk.device import select_target
    from deepfake_sdk.runtimes.base import runtime_class
    from deepfake_sdk.zoo import recorded_drift

    assert int8.artifact.target == select_target("int8", drifting=recorded_drift(int8.spec)).target and int8.spec.name == f"{SMALL}-int8"
    assert int8.runtime == runtime_class(int8.artifact.target).name
    manifest = int8.artifact.manifest
    assert manifest["calibration"]["size"] == 64 and "smoothquant_maxima" in manifest["calibration"]
    assert manifest["mixed_precision"]["passed"] is True  # strict=True would have refused it otherwise
    assert manifest["mixed_precision"]["gate_faces"]["shared_sources_with_calibration"] == []
    for name in ("astronaut.jpg", "astronaut_face.jpg", "astronaut_selfblend.jpg"):
        a, b = int8.predict(samples / name), fp32.predict(samples / name)
        assert abs(a.score - b.score) < 0.1, name
        assert np.allclose(a.box, b.box)


def test_int8_artifact_is_cached_and_verified(int8):
    again = deepfake_sdk.load(f"{SMALL}-int8", progress=False)
    assert again.artifact.path == int8.artifact.path
    model = int8.artifact.model_file
    original = model.read_bytes()
    try:
        model.write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(ArtifactError, match="altered or damaged"):
            deepfake_sdk.load(f"{SMALL}-int8", progress=False)
    finally:
        model.write_bytes(original)


def test_unknown_model_suggests_names():
    with pytest.raises(UnknownModelError, match="gend-int8"):
        deepfake_sdk.load("gend-int9")


def test_missing_runtime_names_the_package(monkeypatch):
    from deepfake_sdk.runtimes.onnxruntime import OnnxRuntime

    monkeypatch.setattr(OnnxRuntime, "is_available", classmethod(lambda cls: False))
    with pytest.raises(MissingDependencyError, match=r"deepfake-sdk\[onnx\]"):
        deepfake_sdk.load("gend-int8", target="onnx", progress=False)


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="unknown target 'tpu'"):
        deepfake_sdk.load("gend-int8", target="tpu")
