"""LiteRT (TFLite) interpreter from ``ai-edge-litert``.

Static INT8 conversion can make the model's *input* an int8 tensor; the runtime then quantizes
the float batch with the input's own scale and zero-point (and dequantizes outputs likewise),
so callers always pass and receive float32.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, per_sample, requested_threads


class TFLiteRuntime(Runtime):
    name = "tflite"
    package = "ai-edge-litert"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(artifact.model_file),
                                           num_threads=requested_threads() or os.cpu_count())
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"LiteRT cannot load {artifact.model_file}: {exc}") from exc
        self.input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        # logits are (1, 2); the feature is (1, D): tell them apart by width, not by name
        self.logits_out = next(o for o in outputs if o["shape"][-1] == 2)
        self.feature_out = next((o for o in outputs if o["shape"][-1] != 2), None)

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("ai_edge_litert") is not None

    @classmethod
    def version(cls) -> str:
        return importlib.metadata.version("ai-edge-litert")

    def _set_input(self, sample: np.ndarray) -> None:
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            sample = np.clip(np.round(sample / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], sample)

    def _get(self, detail) -> np.ndarray:
        value = self.interpreter.get_tensor(detail["index"])
        if value.dtype != np.float32:
            scale, zero = detail["quantization"]
            value = (value.astype(np.float32) - zero) * scale
        return value

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        def run_one(sample: np.ndarray):
            self._set_input(sample)
            self.interpreter.invoke()
            feats = self._get(self.feature_out) if self.feature_out is not None else None
            return self._get(self.logits_out), feats

        return per_sample(run_one, batch)


RUNTIME = TFLiteRuntime
