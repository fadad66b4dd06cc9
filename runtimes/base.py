"""The runtime interface: load an artifact once, run preprocessed batches, return logits.

Each runtime module defines one ``Runtime`` subclass named ``RUNTIME``; :func:`runtime_for`
finds it through the target table, so callers never import a runtime module by hand.
"""
from __future__ import annotations

import importlib
import os
import platform
import threading
from abc import ABC, abstractmethod

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError, MissingDependencyError, UsageError
from ..targets import TARGETS, get_target, version_in_range


THREADS_ENV = "DEEPFAKE_SDK_THREADS"  # threads every runtime opened afterwards uses (scan pins it)


def requested_threads() -> int | None:
    """``$DEEPFAKE_SDK_THREADS`` as a positive count, or None (each engine's own default)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"${THREADS_ENV} must be a positive whole number of threads, not {value!r}")
    return int(value)


class Runtime(ABC):
    """A loaded artifact. The session is created in ``__init__`` and reused by every ``run``."""

    name: str = ""
    package: str = ""  # the pip package that provides the engine
    # ONNX Runtime sessions may run from many threads at once; OpenVINO infer requests,
    # ExecuTorch methods and TFLite interpreters hold per-call state, so calls are serialised.
    thread_safe: bool = False

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self._lock = threading.Lock()

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """True when the engine imports here and can run (e.g. not Core ML on Linux)."""

    @classmethod
    @abstractmethod
    def version(cls) -> str: ...

    @abstractmethod
    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, 3, H, W)`` float32, preprocessed -> ``(N, 2)`` logits and ``(N, D)`` unit-norm
        features (None when the artifact does not expose them)."""

    def safe_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`outputs`, serialised for engines that are not thread-safe."""
        if self.thread_safe:
            return self.outputs(batch)
        with self._lock:
            return self.outputs(batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.safe_outputs(batch)[0]

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        return self.safe_outputs(batch)[1]


def per_sample(run_one, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Run a batch-1 model over a batch: ``run_one(sample (1,3,H,W)) -> (logits, features)``."""
    logits, feats = [], []
    for sample in np.ascontiguousarray(batch, dtype=np.float32):
        out_logits, out_feats = run_one(sample[None])
        logits.append(out_logits)
        if out_feats is not None:
            feats.append(out_feats)
    return np.concatenate(logits), (np.concatenate(feats) if feats else None)


def runtime_class(target: str) -> type[Runtime]:
    module = importlib.import_module(f"deepfake_sdk.runtimes.{get_target(target).runtime}")
    return module.RUNTIME


def require_runtime(target: str) -> None:
    """Raise :class:`MissingDependencyError` saying how to get ``target``'s runtime here (or that
    its artifacts predict only on another OS)."""
    if runtime_class(target).is_available():
        return
    if not get_target(target).predicts_on_linux and platform.system() != "Darwin":
        raise MissingDependencyError(
            f"{target!r} artifacts predict only on macOS/iOS; on {platform.system()} you can export "
            f"and validate them (deepfake-sdk export gend-int8 --target {target}) but not run them"
        )
    raise MissingDependencyError(
        f"the {target!r} runtime ({runtime_class(target).package}) is not installed here: "
        f"pip install 'deepfake-sdk[{get_target(target).extra}]'"
    )


def runtime_for(artifact: Artifact) -> Runtime:
    """Open ``artifact`` with its target's runtime, or say which package is missing."""
    if artifact.target not in TARGETS:
        raise ArtifactError(f"{artifact.path} is for target {artifact.target!r}, which this SDK does not know "
                            f"(known: {', '.join(TARGETS)}); upgrade deepfake-sdk or re-export it")
    cls = runtime_class(artifact.target)
    target = get_target(artifact.target)
    if not cls.is_available():
        raise MissingDependencyError(
            f"the {artifact.target!r} runtime ({cls.package}) is not installed here: "
            f"pip install 'deepfake-sdk[{target.extra}]'"
        )
    check_runtime_version(artifact, cls, target.runtime_versions)
    return cls(artifact)


def check_runtime_version(artifact: Artifact, cls: type[Runtime], tested: str) -> None:
    """Refuse to run an artifact under a runtime release its numerics were never checked with."""
    installed = cls.version()
    if tested and not version_in_range(installed, tested):
        raise ArtifactError(
            f"{artifact.path}: {cls.package} {installed} is installed, but {artifact.target!r} artifacts are "
            f"verified with {cls.package}{tested}; run: pip install '{cls.package}{tested}' "
            f"(or re-export and re-verify under this release)")
