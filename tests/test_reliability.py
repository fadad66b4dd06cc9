"""The cache and the detector under crashes and concurrency (issue 9).

Builds are atomic and serialised across processes (file lock + temporary folder + rename); a
build SIGKILLed midway leaves nothing the next ``load()`` trips on; concurrent callers get the
serial results; NaN/Inf from a runtime is an error, never a score.
"""
from __future__ import annotations

from dataclasses import replace

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import deepfake_sdk
from deepfake_sdk.errors import NonFiniteOutputError
from deepfake_sdk.runtimes.base import runtime_class
from deepfake_sdk.targets import TARGETS

from tinymodel import register

TINY = register()
WORKER = Path(__file__).with_name("worker.py")
RUNNABLE = [t for t in TARGETS if TARGETS[t].predicts_on_linux and runtime_class(t).is_available()]
IMAGES = ["astronaut.jpg", "astronaut_face.jpg", "astronaut_selfblend.jpg", "cat_no_face.jpg"]


def _worker(mode: str, cache: Path, target: str = "onnx", images=()) -> subprocess.Popen:
    env = {**os.environ, "DEEPFAKE_SDK_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(WORKER), mode, target, *map(str, images)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _load_quietly(target: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deepfake_sdk.load(TINY, target=target, progress=False)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "artifacts").glob(".*") if not p.name.endswith(".lock"))


def test_a_build_killed_midway_leaves_nothing_the_next_load_trips_on(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    proc = _worker("build", cache)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (cache / "artifacts").is_dir() or not _leftovers(cache):
        assert proc.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline, "no build folder appeared"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _leftovers(cache), "killed mid-build: its temporary folder is still there"
    assert not list((cache / "artifacts").glob("tinygend-*/manifest.json")), "nothing half-built was published"
    monkeypatch.setenv("DEEPFAKE_SDK_CACHE", str(cache))
    det = _load_quietly("onnx")
    assert (det.artifact.path / "manifest.json").is_file() and _leftovers(cache) == []
    assert det.predict(Path(__file__).parents[1] / "samples" / "astronaut.jpg").score is not None


def test_two_processes_building_at_once_end_with_one_artifact(tmp_path):
    cache = tmp_path / "cache"
    first, second = _worker("build", cache), _worker("build", cache)
    a, b = _result(first), _result(second)
    assert a["path"] == b["path"] and a["created"] == b["created"] and a["sha"] == b["sha"], "built once, shared"
    assert [p.name for p in (cache / "artifacts").iterdir() if not p.name.startswith(".")] == [Path(a["path"]).name]
    assert _leftovers(cache) == []


def _serial(det, samples: Path) -> list:
    return [det.predict(samples / name).score for name in IMAGES]


@pytest.mark.parametrize("target", RUNNABLE)
def test_eight_threads_get_the_serial_results(target, samples):
    det = _load_quietly(target)
    serial = _serial(det, samples)
    backend = det.backend
    jobs = [samples / IMAGES[i % len(IMAGES)] for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda p: det.predict(p).score, jobs))
    assert threaded == [serial[i % len(IMAGES)] for i in range(32)]
    assert det.backend is backend, "one runtime session per detector"


def test_four_processes_sharing_one_cache_get_the_serial_results(samples, private_cache):
    det = _load_quietly("onnx")
    serial = _serial(det, samples)
    procs = [_worker("predict", private_cache, "onnx", [samples / n for n in IMAGES]) for _ in range(4)]
    results = [_result(p) for p in procs]
    assert all(r["scores"] == serial for r in results)
    assert {r["path"] for r in results} == {str(det.artifact.path)}


def test_nan_from_a_runtime_is_an_error_not_a_score(samples):
    det = _load_quietly("onnx")

    class Broken:
        name = "broken"

        def run(self, batch):
            return np.full((len(batch), 2), np.nan, np.float32)

    det.backend = Broken()
    with pytest.raises(NonFiniteOutputError, match="NaN/Inf logits for 1 of 1"):
        det.predict(samples / "astronaut.jpg")


@pytest.mark.parametrize("target", RUNNABLE)
def test_one_artifact_gives_the_same_scores_and_verdict_on_1_and_2_threads(target, astronaut_crop, monkeypatch):
    """The release gate must not turn on how many threads a runtime used (issue 31): every runtime
    takes $DEEPFAKE_SDK_THREADS, and the same artifact scores the same crops alike with 1 and 2.
    Tolerance: 1e-6 on P(fake) (kernels may split reductions by thread); decisions identical."""
    from conftest import augmented_crops
    from deepfake_sdk.metrics import softmax_fake
    from deepfake_sdk.preprocess import to_batch
    from deepfake_sdk.runtimes.base import runtime_for
    from deepfake_sdk.verification.gates import Gate, compare
    from deepfake_sdk.zoo import get_spec

    spec = get_spec(TINY)
    artifact = _load_quietly(target).artifact
    batch = to_batch(augmented_crops(astronaut_crop, spec.preprocessing.size, 16), spec.preprocessing)
    scores = {}
    for threads in (1, 2):
        monkeypatch.setenv("DEEPFAKE_SDK_THREADS", str(threads))
        scores[threads] = softmax_fake(runtime_for(artifact).run(batch))
    assert np.max(np.abs(scores[1] - scores[2])) <= 1e-6, f"{target}: scores moved with the thread count"
    assert list(scores[1] >= spec.threshold) == list(scores[2] >= spec.threshold)
    # 16 crops cannot show a small rate's bound (Gate.too_few_faces): judged on the raw rate here
    assert replace(Gate.release(), flip_confidence=None).passes(compare(scores[1], scores[2], None, spec.threshold))


def test_a_thread_count_that_is_not_a_positive_number_is_refused(monkeypatch):
    from deepfake_sdk.errors import UsageError
    from deepfake_sdk.runtimes.base import requested_threads

    monkeypatch.setenv("DEEPFAKE_SDK_THREADS", "2")
    assert requested_threads() == 2
    monkeypatch.delenv("DEEPFAKE_SDK_THREADS")
    assert requested_threads() is None
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("DEEPFAKE_SDK_THREADS", bad)
        with pytest.raises(UsageError, match="positive whole number"):
            requested_threads()
