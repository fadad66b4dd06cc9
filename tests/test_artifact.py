"""Artifacts are written atomically and refused when altered after export."""
from __future__ import annotations

import json

import pytest

from deepfake_sdk import __version__
from deepfake_sdk.artifact import Artifact, atomic_path, write_manifest
from deepfake_sdk.errors import ArtifactError


def _artifact(folder):
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    write_manifest(folder, {"target": "onnx", "precision": "int8", "model_file": "model.bin", "sdk_version": __version__})
    return folder


def test_roundtrip_and_checksums(tmp_path):
    art = Artifact.load(_artifact(tmp_path / "a"))
    assert art.target == "onnx" and art.model_file.name == "model.bin"
    assert set(art.manifest["files"]) == {"model.bin"}


def test_tampered_file_is_refused(tmp_path):
    folder = _artifact(tmp_path / "a")
    (folder / "model.bin").write_bytes(b"weightz")
    with pytest.raises(ArtifactError, match="checksum of model.bin"):
        Artifact.load(folder)


def test_missing_file_version_and_target(tmp_path):
    folder = _artifact(tmp_path / "a")
    with pytest.raises(ArtifactError, match="not 'tflite'"):
        Artifact.load(folder, expect_target="tflite")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format 99"):
        Artifact.load(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="not an artifact"):
        Artifact.load(folder)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "art"
    with pytest.raises(RuntimeError):
        with atomic_path(dest, is_dir=True) as tmp:
            (tmp / "half.onnx").write_bytes(b"x")
            raise RuntimeError("export crashed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(dest, is_dir=True) as tmp:
        (tmp / "ok").write_text("done")
    assert (dest / "ok").read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_incompatible_sdk_version_is_refused_with_what_to_do(tmp_path):
    folder = _artifact(tmp_path / "old")
    manifest = Artifact.load(folder).manifest
    write_manifest(folder, {**{k: v for k, v in manifest.items() if k not in ("files", "format_version")},
                            "sdk_version": "9.4.0"})
    with pytest.raises(ArtifactError, match=r"exported by deepfake-sdk 9\.4\.0.*Re-export"):
        Artifact.load(folder)


def test_unknown_target_and_untested_runtime_release_are_refused(tmp_path, monkeypatch):
    from deepfake_sdk.runtimes.base import runtime_for
    from deepfake_sdk.runtimes.onnxruntime import OnnxRuntime

    folder = _artifact(tmp_path / "a")
    manifest = {k: v for k, v in Artifact.load(folder).manifest.items() if k not in ("files", "format_version")}
    write_manifest(folder, {**manifest, "target": "tpu"})
    with pytest.raises(ArtifactError, match="target 'tpu'"):
        runtime_for(Artifact.load(folder))
    write_manifest(folder, manifest)
    monkeypatch.setattr(OnnxRuntime, "version", classmethod(lambda cls: "1.40.0"))
    with pytest.raises(ArtifactError, match=r"onnxruntime 1\.40\.0 is installed.*pip install 'onnxruntime>="):
        runtime_for(Artifact.load(folder))
