"""``scan``: images and videos into a resumable Parquet dataset, on a local pool and on Ray
(a local Ray instance on loopback), and a scan killed midway that resumes without re-scoring."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_sdk.cli import main
from deepfake_sdk.scan import ScanConfig, media_files, read_results, scan

import tinymodel
from clips import write_clip

pytest.importorskip("pyarrow", reason="scan writes Parquet: pip install 'deepfake-sdk[scan]'")
pytest.importorskip("av", reason="videos need PyAV: pip install 'deepfake-sdk[video]'")

TESTS = Path(__file__).resolve().parent
CONFIG = ScanConfig(model=tinymodel.register(), target="onnx", fps=2, setup="tinymodel:register")


@pytest.fixture(scope="module")
def collection(samples, tmp_path_factory) -> Path:
    """Sample photos (faces, a cat), a clip, a broken image, in nested folders."""
    root = tmp_path_factory.mktemp("collection")
    (root / "photos" / "more").mkdir(parents=True)
    for name in ("astronaut.jpg", "astronaut_face.jpg", "astronaut_selfblend.jpg", "cat_no_face.jpg"):
        shutil.copy(samples / name, root / "photos" / name)
    shutil.copy(samples / "astronaut_selfblend_face.jpg", root / "photos" / "more" / "blend_face.jpg")
    (root / "photos" / "more" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("not media")
    write_clip(root / "clip.mp4", samples / "astronaut.jpg", seconds=1.0)
    return root


@pytest.fixture(scope="module")
def single(collection, tmp_path_factory) -> list[dict]:
    """The single-process scan every other engine must reproduce."""
    out = tmp_path_factory.mktemp("single") / "results.parquet"
    summary = scan([collection], out, CONFIG, progress=False)
    assert summary.scanned == summary.files == 7 and summary.skipped == 0
    return read_results(out)


def _comparable(rows: list[dict]) -> list[tuple]:
    return [(r["path"], r["kind"], r["faces"], r["frames"], r["error"] is None, r["score"] is None) for r in rows]


def assert_same_results(rows: list[dict], expected: list[dict]) -> None:
    """Same files, kinds, faces, frames, errors, labels and scores: every engine's workers use the
    same thread count (ScanConfig.threads), so they compute the same numbers."""
    assert _comparable(rows) == _comparable(expected)
    for got, want in zip(rows, expected):
        assert got["label"] == want["label"], got["path"]
        if want["score"] is not None:
            assert got["score"] == pytest.approx(want["score"], abs=1e-6), got["path"]


def test_scan_writes_one_row_per_file_with_errors_recorded(single, collection):
    assert [r["path"] for r in single] == media_files([collection])
    by_name = {Path(r["path"]).name: r for r in single}
    assert by_name["broken.jpg"]["error"].startswith("InvalidImageError") and by_name["broken.jpg"]["score"] is None
    assert by_name["cat_no_face.jpg"]["label"] == "no_face" and by_name["cat_no_face.jpg"]["error"] is None
    clip = by_name["clip.mp4"]
    assert clip["kind"] == "video" and clip["frames"] == 2 and clip["faces"] == 1
    assert json.loads(clip["detail"])["tracks"][0]["frames"] == 2
    assert all(r["label"] in ("real", "fake") for n, r in by_name.items() if n not in ("broken.jpg", "cat_no_face.jpg"))


def test_a_second_run_resumes_and_scores_nothing_again(collection, tmp_path):
    out = tmp_path / "r.parquet"
    first = scan([collection / "photos"], out, CONFIG, chunk_size=2, progress=False)
    parts = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    again = scan([collection], out, CONFIG, chunk_size=2, progress=False)  # the folder above: one new file
    assert first.scanned == 6 and again.skipped == 6 and again.scanned == 1 and again.files == 7
    assert all(p.stat().st_mtime_ns == t for p, t in parts.items()), "earlier parts are never rewritten"
    assert len(read_results(out)) == 7 and again.errors == 1


def test_a_local_process_pool_gives_the_single_process_results(collection, single, tmp_path):
    out = tmp_path / "pool.parquet"
    summary = scan([collection], out, CONFIG, workers=2, chunk_size=2, progress=False)
    assert summary.workers == 2
    assert_same_results(read_results(out), single)


def test_ray_gives_the_single_process_results(collection, single, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="the ray engine needs Ray: pip install 'deepfake-sdk[ray]'")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    import ray

    out = tmp_path / "ray.parquet"
    seen: list[str] = []
    summary = scan([collection], out, CONFIG, engine="ray", workers=2, chunk_size=2, progress=False,
                   on_part=lambda part: seen.extend(n["NodeManagerAddress"] for n in ray.nodes()))
    assert set(seen) == {"127.0.0.1"}, "the local Ray instance stays on loopback"
    assert summary.engine == "ray"
    assert_same_results(read_results(out), single)


def test_a_scan_killed_midway_resumes_without_rescoring(collection, single, tmp_path):
    out = tmp_path / "killed.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "deepfake_sdk.cli", "scan", str(collection), "--out", str(out),
               "--model", CONFIG.model, "--target", "onnx", "--setup", CONFIG.setup, "--chunk-size", "1",
               "--fps", "2", "--no-progress"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 1 <= len(kept) < 7, "killed after some files and before the last"
    assert not [p for p in out.iterdir() if not p.name.startswith("part-") and not p.name.startswith(".")]
    summary = scan([collection], out, CONFIG, progress=False)
    assert summary.skipped == len(read_results(out)) - summary.scanned == len(kept)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert_same_results(read_results(out), single)


def test_scan_command_prints_the_summary(collection, tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["scan", str(collection / "photos"), "--out", str(out), "--model", CONFIG.model, "--target", "onnx",
                 "--no-progress"]) == 0
    assert "6 files: 6 scanned now" in capsys.readouterr().out
    assert main(["scan", str(collection), "--out", str(out), "--engine", "local", "--address", "x:1"]) == 2


def test_a_pool_worker_killed_midway_loses_nothing_after_a_resume(collection, single, tmp_path):
    import multiprocessing

    out = tmp_path / "pool-killed.parquet"
    killed: list[int] = []

    def kill_a_worker(part: Path) -> None:
        if not killed:
            worker = multiprocessing.active_children()[0]
            killed.append(worker.pid)
            os.kill(worker.pid, signal.SIGKILL)

    from deepfake_sdk.errors import DeepfakeSDKError

    with pytest.raises(DeepfakeSDKError, match="worker died"):
        scan([collection], out, CONFIG, workers=2, chunk_size=1, progress=False, on_part=kill_a_worker)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert killed and 1 <= len(kept) < 7
    summary = scan([collection], out, CONFIG, progress=False)
    assert summary.skipped == len(kept) and summary.scanned == 7 - len(kept)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert_same_results(read_results(out), single)
