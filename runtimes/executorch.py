"""ExecuTorch's Python runtime (the same ``.pte`` runs on Android/iOS through its C++ API).
Artifacts are exported at batch 1; a batch runs one face at a time."""
from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    package = "executorch"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        from executorch.runtime import Runtime as ETRuntime

        try:
            program = ETRuntime.get().load_program(str(artifact.model_file))
            self.method = program.load_method("forward")
        except Exception as exc:  # ExecuTorch raises RuntimeError/ValueError with status codes
            raise ArtifactError(f"ExecuTorch cannot load {artifact.model_file}: {exc}") from exc

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("executorch") is not None

    @classmethod
    def version(cls) -> str:
        return importlib.metadata.version("executorch")

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        logits, feats = [], []
        for sample in np.ascontiguousarray(batch, dtype=np.float32):
            out = self.method.execute([torch.from_numpy(sample[None])])
            logits.append(out[0].numpy())
            feats.append(out[1].numpy())
        return np.concatenate(logits), np.concatenate(feats)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)[0]

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        return self._run(batch)[1]


RUNTIME = ExecuTorchRuntime
