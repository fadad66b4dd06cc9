"""OpenVINO on the CPU. FP32 and INT8 artifacts run with ``INFERENCE_PRECISION_HINT=f32``:
without it OpenVINO executes every float part in bf16 on CPUs that support it (AVX-512 BF16,
AMX), so FP32 parity would be lost there, and an INT8 artifact's float parts (attention,
LayerNorms, the head) would round differently on an Intel AMX machine than on the AVX2 machine
whose release gate recorded them."""
from __future__ import annotations

import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, requested_threads


def float_parts_config(precision: str) -> dict[str, str]:
    """Compile options that keep what an artifact computes in float at FP32 on every CPU; an FP16
    artifact asked for half precision and is left to the plugin's choice."""
    return {} if precision == "fp16" else {"INFERENCE_PRECISION_HINT": "f32"}


class OpenVINORuntime(Runtime):
    name = "openvino"
    package = "openvino"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        import openvino as ov

        core = ov.Core()
        config = float_parts_config(artifact.precision)
        # e.g. DYNAMIC_QUANTIZATION_GROUP_SIZE for weight-compressed INT8 (converters/openvino.py)
        config.update((artifact.manifest.get("quantization") or {}).get("runtime_config", {}))
        threads = requested_threads()
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
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
