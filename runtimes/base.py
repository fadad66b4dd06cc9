"""The runtime interface: load an artifact once, run preprocessed batches, return logits.

Each runtime module defines one ``Runtime`` subclass named ``RUNTIME``; :func:`runtime_for`
finds it through the target table, so callers never import a runtime module by hand.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from ..artifact import Artifact
from ..errors import MissingDependencyError
from ..targets import get_target


class Runtime(ABC):
    """A loaded artifact. The session is created in ``__init__`` and reused by every ``run``."""

    name: str = ""
    package: str = ""  # the pip package that provides the engine

    def __init__(self, artifact: Artifact):
        self.artifact = artifact

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """True when the engine imports here and can run (e.g. not Core ML on Linux)."""

    @classmethod
    @abstractmethod
    def version(cls) -> str: ...

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32, preprocessed -> ``(N, 2)`` float32 logits."""

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        """Unit-norm CLS features when the artifact exposes them, else None."""
        return None


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
