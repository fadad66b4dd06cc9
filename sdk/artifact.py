"""Artifacts: a folder holding model file(s) and a checksummed ``manifest.json``.

Converters write artifacts; runtimes read them; neither imports the other, both import this.
Writes are atomic (built in a temporary sibling, then renamed) so an interrupted export never
leaves a half-written artifact, and loads verify every file's SHA-256 so an artifact altered
after export is refused with a clear :class:`ArtifactError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from . import __version__
from .errors import ArtifactError
from .jsonio import dumps, plain

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
BUNDLE_KIND = "app-bundle"  # an app bundle's manifest ``kind`` (``bundles.writer``); an artifact has none


LOCK_TIMEOUT_S = 3600.0  # a build of the largest artifact takes minutes; a stuck lock gives up


@contextlib.contextmanager
def build_lock(dest: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``dest`` so one process at a time builds it.

    Inside the lock, temporary siblings left by a killed build (``.<name>.*``) are removed:
    nobody else can be writing them. The lock file itself is an OS lock (released by the
    kernel if the holder dies), so a SIGKILLed build never blocks the next one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise ArtifactError(f"another process has been building {dest} for over {timeout:.0f} s; "
                            f"if none is, delete {lock.lock_file}") from exc
    try:
        for stale in dest.parent.glob(f".{dest.name}.*"):
            if stale.name != Path(lock.lock_file).name:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(dest: Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; move it onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _umask_permissions(tmp)
        if is_dir and dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _umask_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


@dataclass(frozen=True)
class Artifact:
    """A verified artifact folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest["model_file"]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.manifest["preprocessing"]

    def size_bytes(self) -> int:
        return sum((self.path / name).stat().st_size for name in self.manifest["files"])

    @classmethod
    def load(cls, path: str | Path, expect_target: str | None = None) -> "Artifact":
        """Read and verify an artifact; raise :class:`ArtifactError` naming what is wrong."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"{path} is not an artifact: it has no {MANIFEST}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path} has artifact format {version!r}; this SDK reads format {FORMAT_VERSION}. "
                "Re-export it with this SDK version."
            )
        made_by = str(manifest.get("sdk_version", ""))
        if manifest.get("kind") is None and made_by.split(".")[:2] != __version__.split(".")[:2]:
            raise ArtifactError(
                f"{path} was exported by deepfake-sdk {made_by or '(unknown)'}; this is {__version__}, "
                "whose runtimes and preprocessing may differ. Re-export it with this version "
                "(deepfake-sdk export ...), or install the SDK that made it."
            )
        if expect_target and manifest.get("target") != expect_target:
            raise ArtifactError(
                f"{path} is a {manifest.get('target')!r} artifact, not {expect_target!r}"
            )
        for name, expected in manifest["files"].items():
            file = path / name
            if not file.is_file():
                raise ArtifactError(f"{path}: file {name} listed in the manifest is missing")
            if sha256_file(file) != expected:
                raise ArtifactError(
                    f"{path}: checksum of {name} does not match the manifest: the file was "
                    "altered or damaged after export. Re-export the artifact."
                )
        return cls(path=path, manifest=manifest)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add checksums of every file in ``folder`` and write ``manifest.json`` there."""
    # recursive: some formats are folders (Core ML's .mlpackage)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST)
    full = plain({"format_version": FORMAT_VERSION, **manifest})
    full["files"] = {name: sha256_file(folder / name) for name in files}
    (folder / MANIFEST).write_text(dumps(full, indent=2, sort_keys=True) + "\n")
    return full
