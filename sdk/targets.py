"""The one table of targets. Adding a target = one converter module, one runtime module and a
row here; nothing else changes (docs/targets.md walks through it).

Modules are named as strings and imported lazily, so a runtime-only install never imports a
converter's toolchain, and converters never import runtimes (both share ``artifact.py``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str  # what users type: target="onnx"
    converter: str  # module under deepfake_sdk.converters
    runtime: str  # module under deepfake_sdk.runtimes
    precisions: tuple[str, ...]  # precisions the converter can write
    extra: str  # pip extra that installs converter + runtime
    model_suffix: str  # the artifact's model file
    predicts_on_linux: bool = True  # False: artifacts build here, prediction needs another OS
    description: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("onnx", "onnx", "onnxruntime", ("fp32", "int8"), "onnx", ".onnx",
               description="ONNX Runtime (CPU; also onnxruntime-web in browsers), static QDQ INT8"),
    ]
}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[name]
