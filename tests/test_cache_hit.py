"""A cache hit touches only what it serves (issue 30): ``load()`` of a built artifact reads the
recorded index, checks the cheap stamp and the artifact's checksums, and opens the runtime; it
makes no calibration or gate crops, hashes no source file, and imports no build, export, bundle
or video code. A stale stamp falls back to the full recipe key."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deepfake_sdk
import deepfake_sdk.building.build as build
import deepfake_sdk.inference.cached as cached
from deepfake_sdk.runtimes.base import runtime_class
from deepfake_sdk.zoo import get_spec

from tinymodel import register

TINY = register()
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def built(samples):
    det = deepfake_sdk.load(TINY, target="onnx", progress=False)
    return det.artifact.path


def _forbid(monkeypatch, module, names: list[str], calls: list[str]) -> None:
    for name in names:
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: calls.append(_n) or pytest.fail(f"{_n} called"))


def test_a_cache_hit_builds_no_crops_and_hashes_no_source(built, monkeypatch, samples):
    import deepfake_sdk.building.export as export_module
    import deepfake_sdk.quantization.calibration as calibration

    calls: list[str] = []
    _forbid(monkeypatch, calibration, ["build_sets", "packaged_sets", "from_data_dir"], calls)
    _forbid(monkeypatch, export_module, ["exporter_fingerprint", "model_code_fingerprint", "recipe_key"], calls)
    _forbid(monkeypatch, build, ["ensure_artifact"], calls)
    det = deepfake_sdk.load(TINY, target="onnx", progress=False)
    assert calls == [] and det.artifact.path == built
    assert det.predict(samples / "astronaut.jpg").label in ("real", "fake")


def test_a_stale_stamp_falls_back_to_the_full_key_and_is_recorded_again(built, monkeypatch):
    entry = next((built.parent.parent / cached.INDEX).glob(f"{get_spec(TINY).base_name}-int8-onnx-*.json"))
    assert json.loads(entry.read_text())["artifact"] == built.name
    monkeypatch.setattr(cached, "code_stamp", lambda: "edited-since")  # what any source edit does
    assert cached.lookup(get_spec(TINY), "onnx") is None
    seen = []
    real = build.ensure_artifact
    monkeypatch.setattr(build, "ensure_artifact", lambda *a, **k: seen.append(1) or real(*a, **k))
    det = deepfake_sdk.load(TINY, target="onnx", progress=False)
    assert seen == [1] and det.artifact.path == built, "the full key finds the same artifact: nothing rebuilt"
    assert json.loads(entry.read_text())["stamp"]["code"] == "edited-since"


def test_a_recorded_artifact_altered_after_the_build_is_not_served(built):
    spec = get_spec(TINY)
    deepfake_sdk.load(TINY, target="onnx", progress=False)  # recorded under today's stamp
    assert cached.lookup(spec, "onnx") is not None
    manifest = built / "manifest.json"
    saved = manifest.read_text()
    try:
        data = json.loads(saved)
        data["files"] = {name: "0" * 64 for name in data["files"]}
        manifest.write_text(json.dumps(data))
        assert cached.lookup(spec, "onnx") is None, "a checksum mismatch is a miss, then the build path decides"
    finally:
        manifest.write_text(saved)


TARGETS = [t for t in ("onnx", "executorch", "openvino", "tflite") if runtime_class(t).is_available()]


@pytest.mark.parametrize("target", TARGETS)
def test_a_fresh_process_serves_a_cached_build_without_build_code(target, samples):
    deepfake_sdk.load(TINY, target=target, progress=False)  # built (or found) in this session's cache
    code = f"""
import sys, warnings
sys.path.insert(0, {str(HERE)!r})
from tinymodel import register
import deepfake_sdk
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    det = deepfake_sdk.load(register(), target={target!r}, progress=False)
det.predict({str(samples / "astronaut.jpg")!r})
heavy = ["deepfake_sdk.building.build", "deepfake_sdk.building.export", "deepfake_sdk.bundles.writer", "deepfake_sdk.video",
         "deepfake_sdk.quantization.calibration", "deepfake_sdk.converters.base", "executorch.exir"]
print([m for m in heavy if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", f"a cache hit imported {out.stdout.strip()}"
