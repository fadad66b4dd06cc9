"""ONNX Runtime on the CPU (the same graph runs in browsers through onnxruntime-web)."""
from __future__ import annotations

import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, requested_threads


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    package = "onnxruntime"
    thread_safe = True  # InferenceSession.run is documented as safe to call concurrently

    def __init__(self, artifact: Artifact, threads: int | None = None):
        super().__init__(artifact)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or requested_threads() or 0
        options.log_severity_level = 3
        # e.g. folding INT8-stored Conv weights once at load (converters/onnx.py)
        for key, value in ((artifact.manifest.get("quantization") or {}).get("runtime_config") or {}).items():
            options.add_session_config_entry(key, str(value))
        try:
            self.session = ort.InferenceSession(
                str(artifact.model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ArtifactError(f"ONNX Runtime cannot load {artifact.model_file}: {exc}") from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    @classmethod
    def version(cls) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        values = dict(zip(self.output_names, self.session.run(None, {"pixels": np.ascontiguousarray(batch, np.float32)})))
        return values["logits"], values.get("features")


RUNTIME = OnnxRuntime
