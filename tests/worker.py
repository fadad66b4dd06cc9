"""Subprocess side of the cache and concurrency tests: ``python worker.py build|predict TARGET [IMAGES]``.

Prints one JSON line: the artifact path, its creation stamp and, for ``predict``, the scores.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tinymodel import register  # noqa: E402

import deepfake_sdk  # noqa: E402


def main() -> None:
    mode, target, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = deepfake_sdk.load(register(), target=target, progress=False)
    out = {"path": str(det.artifact.path), "created": det.artifact.manifest["created"],
           "sha": det.artifact.manifest["files"]}
    if mode == "predict":
        out["scores"] = [det.predict(p).score for p in images]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
