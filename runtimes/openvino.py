"""OpenVINO on the CPU. FP32 artifacts run with ``INFERENCE_PRECISION_HINT=f32``: without it
OpenVINO executes them in bf16 on CPUs that support it, and FP32 parity would be lost."""
from __future__ import annotations

import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime


class OpenVINORuntime(Runtime):
    name = "openvino"
    package = "openvino"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"} if artifact.precision == "fp32" else {}
        try:
            self.compiled = core.compile_model(str(artifact.model_file), "CPU", config)
        except RuntimeError as exc:
            raise ArtifactError(f"OpenVINO cannot load {artifact.model_file}: {exc}") from exc
        self.request = self.compiled.create_infer_request()

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("openvino") is not None

    @classmethod
    def version(cls) -> str:
        import openvino

        return openvino.__version__

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        result = self.request.infer({"pixels": np.ascontiguousarray(batch, dtype=np.float32)})
        return {name: np.asarray(result[self.compiled.output(name)]) for name in ("logits", "features")}

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)["logits"]

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        return self._run(batch)["features"]


RUNTIME = OpenVINORuntime
