"""Scanning collections of images and videos: one scan function, three ways to run it.

``scan(inputs, out)`` scores every image and video under ``inputs`` and writes one row per file
into ``out``, a Parquet dataset folder (``results.parquet/part-*.parquet``, readable whole by
``pyarrow.parquet.read_table``/pandas). Each chunk of files is written as its own part,
atomically, as soon as it is scored, so a scan killed at any point keeps every finished chunk
and a rerun skips the files already written (resumable). A file that fails gets a row with its
error; the scan goes on.

The engines call the same :class:`Scanner` (a detector loaded once per worker):
``local`` with one worker scores in this process, with N a process pool; ``ray`` uses Ray actors
on a local Ray instance bound to loopback, or the cluster at ``address``.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import json
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

from .errors import DeepfakeSDKError, MissingDependencyError, UsageError
from .imageio import IMAGE_SUFFIXES
from .runtimes.base import THREADS_ENV
from .video import VIDEO_SUFFIXES, is_video
from .zoo import DEFAULT_MODEL, load_callable

ENGINES = ("local", "ray")
COLUMNS = ("path", "kind", "size_bytes", "score", "label", "faces", "frames", "model", "runtime", "latency_ms",
           "error", "detail")


@dataclass(frozen=True)
class ScanConfig:
    """What each worker loads and how it reads a file."""

    model: str = DEFAULT_MODEL
    target: str | None = None
    fps: float = 2.0  # videos: frames sampled per second
    max_frames: int = 64  # videos: at most this many frames
    all_faces: bool = False  # images: score every face (the row's score is the most fake)
    # "module:function" each worker calls before loading the model: registers a team's own zoo
    # entries in processes and Ray actors that did not import them (``register_model``).
    setup: str | None = None
    # Threads each worker's face detector and runtime use, the same in every engine: MTCNN's
    # landmarks move by 1e-5 px between 1 and 2 torch threads, which after alignment and JPEG
    # moved gend-int8 scores by up to 0.03 (../shared/data, AMD EPYC); pinned, engines agree.
    threads: int = 1


@dataclass(frozen=True)
class ScanSummary:
    out: Path
    files: int  # media files found under the inputs
    scanned: int  # scored by this run
    skipped: int  # already in ``out`` from an earlier run
    errors: int
    fake: int
    real: int
    no_face: int
    seconds: float
    engine: str
    workers: int

    def __str__(self) -> str:
        rate = self.scanned / self.seconds if self.seconds else 0.0
        return (f"{self.files} files: {self.scanned} scanned now ({rate:.2f}/s, {self.engine} x{self.workers}), "
                f"{self.skipped} already done; fake {self.fake}, real {self.real}, no face {self.no_face}, "
                f"errors {self.errors} -> {self.out}")


def media_files(inputs: Iterable[str | Path]) -> list[str]:
    """Images and videos under each input: a folder (recursively), a ``.txt`` list of paths (one a
    line), or a file. Sorted and de-duplicated, so every engine sees the same order."""
    found: set[str] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            found.update(str(p) for p in item.rglob("*") if p.is_file() and _is_media(p))
        elif item.suffix.lower() == ".txt":
            found.update(line.strip() for line in item.read_text().splitlines() if line.strip())
        elif item.exists() or _is_media(item):
            found.add(str(item))
        else:
            raise UsageError(f"{item}: no such file or folder")
    return sorted(found)


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


class Scanner:
    """A worker's state: the detector, loaded once; scores chunks of paths into rows."""

    def __init__(self, config: ScanConfig):
        from .api import load

        if config.setup:
            load_callable(config.setup)()
        pin_threads(config.threads)
        self.config = config
        self.detector = load(config.model, target=config.target, progress=False)

    def __call__(self, paths: list[str]) -> list[dict]:
        return [self.score(path) for path in paths]

    def score(self, path: str) -> dict:
        """One row; a file the SDK refuses (unreadable, not an image, no video stream) gets its error."""
        det, cfg = self.detector, self.config
        row = {"path": path, "kind": "video" if is_video(path) else "image", "model": det.spec.name,
               "runtime": det.runtime, "size_bytes": _size(path)}
        try:
            if row["kind"] == "video":
                result = det.predict_video(path, fps=cfg.fps, max_frames=cfg.max_frames).to_dict()
                detail = {"tracks": result["tracks"], "duration_s": result["duration_s"]}
                counts = {"faces": len(result["tracks"]), "frames": result["frames_sampled"]}
            else:
                result = det.predict(path, all_faces=cfg.all_faces).to_dict()
                detail = {"faces": result["faces"]}
                counts = {"faces": len(result["faces"]), "frames": 1}
        except DeepfakeSDKError as exc:
            return {**row, "error": f"{type(exc).__name__}: {exc}"}
        return {**row, **counts, "score": result["score"], "label": result["label"],
                "latency_ms": round(result["latency_ms"], 1), "detail": json.dumps(detail)}


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


# --------------------------------------------------------------------------- results dataset


def _schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("kind", pa.string()), ("size_bytes", pa.int64()),
                      ("score", pa.float64()), ("label", pa.string()), ("faces", pa.int32()),
                      ("frames", pa.int32()), ("model", pa.string()), ("runtime", pa.string()),
                      ("latency_ms", pa.float64()), ("error", pa.string()), ("detail", pa.string())])


def write_part(out: Path, rows: list[dict]) -> Path:
    """Rows as one new part file, written beside and renamed in (never half-written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=_schema())
    final = out / f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = out / f".{final.name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def read_results(out: str | Path) -> list[dict]:
    """Every row written to ``out`` so far (one per file), in path order."""
    import pyarrow.parquet as pq

    parts = sorted(Path(out).glob("part-*.parquet"))
    rows = [row for part in parts for row in pq.read_table(part, schema=_schema()).to_pylist()]
    return sorted(rows, key=lambda r: r["path"])


# --------------------------------------------------------------------------- engines




def pin_threads(threads: int) -> None:
    """Torch (the face detector, PyTorch references) and every runtime opened after this use
    ``threads`` threads (``runtimes.base.requested_threads``)."""
    import torch

    torch.set_num_threads(threads)
    os.environ[THREADS_ENV] = str(threads)


@contextlib.contextmanager
def threads_restored() -> Iterator[None]:
    """This process's thread settings as they were, once the block ends (an in-process scan pins them)."""
    import torch

    threads, env = torch.get_num_threads(), os.environ.get(THREADS_ENV)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = env


_WORKER: Scanner | None = None


def _init_local_worker(config: ScanConfig) -> None:
    global _WORKER
    _WORKER = Scanner(config)


def _score_in_worker(paths: list[str]) -> list[dict]:
    return _WORKER(paths)


def _local(config: ScanConfig, chunks: list[list[str]], workers: int) -> Iterator[list[dict]]:
    if workers == 1:
        with threads_restored():
            scanner = Scanner(config)
            yield from (scanner(chunk) for chunk in chunks)
        return
    context = multiprocessing.get_context("spawn")  # torch and runtimes do not survive fork
    with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_local_worker,
                                     initargs=(config,)) as pool:
        pending = [pool.submit(_score_in_worker, chunk) for chunk in chunks]
        try:
            for done in futures.as_completed(pending):
                yield done.result()
        except futures.process.BrokenProcessPool as exc:
            raise DeepfakeSDKError("a scan worker died (killed or out of memory); every chunk finished before "
                                   "is saved: run the same scan again to resume") from exc


# A local Ray binds the machine's external interface unless told it is no cluster: with these,
# its GCS, raylet and workers listen on 127.0.0.1 only (checked with `ss -ltnp`, Ray 2.60).
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "disabled"}


def _ray(config: ScanConfig, chunks: list[list[str]], workers: int, address: str | None) -> Iterator[list[dict]]:
    """Ray actors, each holding one :class:`Scanner`; a local Ray on loopback unless ``address``."""
    if not address:  # read by Ray when it is imported: set before
        os.environ.update(RAY_LOOPBACK_ENV)
    try:
        import ray
        from ray._private import ray_constants
        from ray.util import ActorPool
    except ImportError as exc:
        raise MissingDependencyError("the ray engine needs Ray: pip install 'deepfake-sdk[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # keep every byte on this machine's loopback (shared/notes/scale.md)
            ray_constants.ENABLE_RAY_CLUSTER = False  # Ray imported before the variable was set
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                     object_store_memory=128 * 1024**2, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=0.5, max_restarts=-1, max_task_retries=3)(_RayScanner)
        pool = ActorPool([actor.remote(config) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, chunk: a.score.remote(chunk), chunks)
    finally:
        if started:
            ray.shutdown()


class _RayScanner:
    """A Ray actor: loads the detector once, like a local worker (restarted by Ray if it dies)."""

    def __init__(self, config: ScanConfig):
        _init_local_worker(config)

    def score(self, paths: list[str]) -> list[dict]:
        return _score_in_worker(paths)


def scan(inputs: Iterable[str | Path], out: str | Path, config: ScanConfig = ScanConfig(), engine: str = "local",
         workers: int = 1, address: str | None = None, chunk_size: int = 8, progress: bool = True,
         on_part: Callable[[Path], None] | None = None) -> ScanSummary:
    """Score every image and video under ``inputs`` into the Parquet dataset ``out`` (resumable)."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers < 1 or chunk_size < 1:
        raise UsageError("workers and chunk size must be >= 1")
    start = time.perf_counter()
    out = Path(out)
    files = media_files(inputs)
    done = {r["path"] for r in read_results(out)} if out.is_dir() else set()
    todo = [f for f in files if f not in done]
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    rows_iter = _ray(config, chunks, workers, address) if engine == "ray" else _local(config, chunks, workers)
    scanned = 0
    with tqdm(total=len(todo), desc="scan", unit="file", disable=not progress) as bar:
        for rows in rows_iter if chunks else ():
            part = write_part(out, rows)
            scanned += len(rows)
            bar.update(len(rows))
            if on_part:
                on_part(part)
    wanted = set(files)
    results = [r for r in read_results(out) if r["path"] in wanted]
    labels = [r["label"] for r in results if not r["error"]]
    return ScanSummary(out, len(files), scanned, len(files) - len(todo), sum(1 for r in results if r["error"]),
                       labels.count("fake"), labels.count("real"), labels.count("no_face"),
                       round(time.perf_counter() - start, 2), engine, workers)
