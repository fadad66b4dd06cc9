"""The platforms an app bundle is made for: one row each says which targets' INT8 models it
ships and which preprocessing code comes with them (no torch here: the CLI reads this table)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

WEB_MODULE = Path(__file__).resolve().parent / "web" / "deepfake.mjs"


@dataclass(frozen=True)
class Platform:
    name: str  # what users type: --for web
    targets: tuple[str, ...]  # whose INT8 artifacts the bundle ships
    code: tuple[str, ...]  # preprocessing sources generated from the manifest (codegen.GENERATORS keys)
    description: str
    static: tuple[Path, ...] = ()  # files copied as they are (the web module reads manifest.json itself)
    # A function of the target's converter applied to the bundle's copy of each model file, so the
    # platform's engine computes what the manifest says (converters/onnx.py: for_browser).
    prepare: str | None = None


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in [
        Platform("web", ("onnx",), (),
                 "INT8 ONNX for onnxruntime-web (wasm) + an ES module that reproduces the preprocessing",
                 static=(WEB_MODULE,), prepare="for_browser"),
        Platform("android", ("executorch", "tflite"), ("kotlin",),
                 "ExecuTorch .pte (XNNPACK) and LiteRT .tflite + Kotlin preprocessing"),
        Platform("ios", ("coreml",), ("swift",), "Core ML .mlpackage + Swift preprocessing"),
    ]
}


def get_platform(name: str) -> Platform:
    if name not in PLATFORMS:
        raise UsageError(f"unknown platform {name!r}; --for takes one of: {', '.join(PLATFORMS)}")
    return PLATFORMS[name]
