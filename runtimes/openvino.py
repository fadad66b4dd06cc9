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
        # e.g. DYNAMIC_QUANTIZATION_GROUP_SIZE for weight-compressed INT8 (converters/openvino.py)
        config.update((artifact.manifest.get("quantization") or {}).get("runtime_config", {}))
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

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        result = self.request.infer({"pixels": np.ascontiguousarray(batch, dtype=np.float32)})
        return (np.asarray(result[self.compiled.output("logits")]),
                np.asarray(result[self.compiled.output("features")]))


RUNTIME = OpenVINORuntime
