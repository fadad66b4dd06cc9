"""The runtime interface: load an artifact once, run preprocessed batches, return logits.

Each runtime module defines one ``Runtime`` subclass named ``RUNTIME``; :func:`runtime_for`
finds it through the target table, so callers never import a runtime module by hand.
"""
from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod

import numpy as np

from ..artifact import Artifact
from ..errors import MissingDependencyError
from ..targets import get_target


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


def runtime_for(artifact: Artifact) -> Runtime:
    """Open ``artifact`` with its target's runtime, or say which package is missing."""
    cls = runtime_class(artifact.target)
    if not cls.is_available():
        extra = get_target(artifact.target).extra
        raise MissingDependencyError(
            f"the {artifact.target!r} runtime ({cls.package}) is not installed here: "
            f"pip install 'deepfake-sdk[{extra}]'"
        )
    return cls(artifact)
