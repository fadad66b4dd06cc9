"""Core ML through coremltools. Prediction runs only on macOS: on other systems
``is_available()`` is False, ``load`` falls back to another target and ``doctor`` says why."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import platform

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, per_sample


class CoreMLRuntime(Runtime):
    name = "coreml"
    package = "coremltools (on macOS)"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        import coremltools as ct

        try:
            self.model = ct.models.MLModel(str(artifact.model_file), compute_units=ct.ComputeUnit.ALL)
        except Exception as exc:
            raise ArtifactError(f"Core ML cannot load {artifact.model_file}: {exc}") from exc

    @classmethod
    def is_available(cls) -> bool:
        return platform.system() == "Darwin" and importlib.util.find_spec("coremltools") is not None

    @classmethod
    def version(cls) -> str:
        return importlib.metadata.version("coremltools") if importlib.util.find_spec("coremltools") else "-"

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        def run_one(sample: np.ndarray):
            out = self.model.predict({"pixels": sample})
            return np.asarray(out["logits"], np.float32), np.asarray(out["features"], np.float32)

        return per_sample(run_one, batch)


RUNTIME = CoreMLRuntime
