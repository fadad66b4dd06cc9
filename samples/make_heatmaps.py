"""Draw one heatmap per detector family over the self-blended sample (outputs are committed).

    python samples/make_heatmaps.py

Writes ``samples/heatmaps/<model>.png``: the aligned crop of ``astronaut_selfblend.jpg`` with the
family's map over it (red = evidence of fake), as ``deepfake-sdk predict --explain`` draws it,
from each family's FP32 reference, and prints each face's score and map kind.
"""
from __future__ import annotations

from pathlib import Path

import deepfake_sdk
from deepfake_sdk.artifact import atomic_path

HERE = Path(__file__).resolve().parent
MODELS = ("gend-fp32", "gendf-fp32", "lfm-fp32", "gend-lite-fp32")


def main() -> None:
    out = HERE / "heatmaps"
    out.mkdir(exist_ok=True)
    for name in MODELS:
        face = deepfake_sdk.load(name).predict(HERE / "astronaut_selfblend.jpg", explain=True).faces[0]
        with atomic_path(out / f"{name}.png") as tmp:
            face.heatmap.overlay().save(tmp, format="PNG")
        print(f"{name:<16} p_fake {face.score:.3f}  {face.heatmap.kind} {face.heatmap.grid.shape}")


if __name__ == "__main__":
    main()
