"""ExecuTorch's Python runtime (the same ``.pte`` runs on Android/iOS through its C++ API).
Artifacts are exported at batch 1; a batch runs one face at a time.

The runtime is the compiled extension alone (``executorch.extension.pybindings._C``, loaded after
torch, whose libraries it links): ``executorch.runtime`` imports ``portable_lib``, which imports the
``executorch.exir`` compiler for a warning class, and with it a YAML table of every edge op, about
5 s of a cache-hit ``load()`` on 2 cores. Where the extension's layout differs (another release),
the public ``executorch.runtime`` is used instead.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from .base import Runtime, per_sample, requested_threads


def _load_forward(model_file: str):
    """The ``forward`` method of a ``.pte``, through the lightest entry point this release offers."""
    import torch  # noqa: F401  (the extension links torch's libraries)

    try:
        from executorch.extension.pybindings import _C
    except ImportError:
        _C = None
    if _C is not None and hasattr(_C, "_load_program"):
        threads = requested_threads()
        if threads and hasattr(_C, "_unsafe_reset_threadpool"):
            _C._unsafe_reset_threadpool(threads)  # XNNPACK's pool is one per process
        program = _C._load_program(model_file, enable_etdump=False, debug_buffer_size=0,
                                   program_verification=_C.Verification.InternalConsistency, data_path=None)
        return program.load_method("forward")
    from executorch.runtime import Runtime as ETRuntime

    method = ETRuntime.get().load_program(model_file).load_method("forward")
    return method.execute


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    package = "executorch"

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        try:
            self.forward = _load_forward(str(artifact.model_file))
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
            logits, feats = self.forward([torch.from_numpy(sample)])[:2]
            return logits.numpy(), feats.numpy()

        return per_sample(run_one, batch)


RUNTIME = ExecuTorchRuntime
