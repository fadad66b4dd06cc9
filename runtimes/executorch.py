"""ExecuTorch's Python runtime (the same ``.pte`` runs on Android/iOS through its C++ API).
Artifacts are exported at batch 1; a batch runs one face at a time."""
from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, per_sample


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

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        def run_one(sample: np.ndarray):
            logits, feats = self.method.execute([torch.from_numpy(sample)])[:2]
            return logits.numpy(), feats.numpy()

        return per_sample(run_one, batch)


RUNTIME = ExecuTorchRuntime
