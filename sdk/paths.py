"""Where the SDK keeps what it builds: one cache folder, overridable for CI and tests."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DEEPFAKE_SDK_CACHE"


def cache_dir() -> Path:
    """``$DEEPFAKE_SDK_CACHE`` or ``~/.cache/deepfake_sdk`` (created on demand)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "deepfake_sdk"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_weights_dir() -> Path:
    """Trained tensors and model cards that ship inside the package."""
    return Path(__file__).resolve().parent / "weights"
