"""The one table of targets. Adding a target = one converter module, one runtime module and a
row here; nothing else changes (docs/targets.md walks through it).

Modules are named as strings and imported lazily, so a runtime-only install never imports a
converter's toolchain, and converters never import runtimes (both share ``artifact.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Target:
    name: str  # what users type: target="onnx"
    converter: str  # module under deepfake_sdk.converters
    runtime: str  # module under deepfake_sdk.runtimes
    precisions: tuple[str, ...]  # precisions the converter can write
    extra: str  # pip extra that installs converter + runtime
    model_suffix: str  # the artifact's model file
    predicts_on_linux: bool = True  # False: artifacts build here, prediction needs another OS
    int8_activations: str = "static"  # Int8Config.activations that passes the parity gate here
    int8_schemes: tuple[str, ...] = ("static", "dynamic")  # the Int8Config.activations its converter builds
    int8_min_float_layers: int = 0  # Int8Config.min_float_layers: sensitive Linears always float
    runtime_versions: str = ""  # releases of the runtime the numerics were recorded with (">=a,<b")
    description: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("onnx", "onnx", "onnxruntime", ("fp32", "int8"), "onnx", ".onnx", int8_activations="dynamic",
               runtime_versions=">=1.31.1,<1.33",
               description="ONNX Runtime (CPU; also onnxruntime-web), 8-bit MatMulNBits per block"),
        Target("openvino", "openvino", "openvino", ("fp32", "fp16", "int8"), "openvino", ".xml",
               int8_activations="dynamic", runtime_versions=">=2026.4,<2026.5",
               description="OpenVINO IR on Intel CPUs/GPUs/NPUs, INT8 weights + run-time activation INT8"),
        Target("executorch", "executorch", "executorch", ("fp32", "int8"), "executorch", ".pte",
               int8_activations="dynamic", runtime_versions=">=1.5,<1.6",
               # all-INT8 passes the build gate yet flips 3/284 held-out faces (1.06%, gate 1%);
               # the 8 most sensitive Linears float: 2/284, 33 MB instead of 23 (docs/targets.md)
               int8_min_float_layers=8,
               description="ExecuTorch lowered to XNNPACK (Android, iOS, embedded), PT2E INT8"),
        Target("tflite", "tflite", "tflite", ("fp32", "int8"), "tflite", ".tflite",
               int8_activations="dynamic", int8_schemes=("static", "dynamic", "float"), runtime_versions=">=2.3,<2.4",
               description="TFLite / LiteRT (Android, edge TPUs, microcontrollers), PT2E INT8"),
        Target("coreml", "coreml", "coreml", ("fp32", "fp16", "int8", "w8"), "coreml", ".mlpackage",
               predicts_on_linux=False,
               description="Core ML ML program (iOS 17+/macOS 14+); predicts on macOS only"),
    ]
}


def version_in_range(version: str, spec: str) -> bool:
    """``"1.32.0"`` against ``">=1.31.1,<1.33"`` (numeric release parts only; empty spec: any)."""
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for piece in v.split("-")[0].split("+")[0].split("."):
            digits = "".join(ch for ch in piece if ch.isdigit())
            if not digits:
                break
            out.append(int(digits))
        return tuple(out)

    have = parts(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op = clause.rstrip("0123456789.")
        want = parts(clause[len(op):])
        padded = have[: len(want)] + (0,) * max(0, len(want) - len(have))
        ok = {">=": padded >= want, "<": have < want, "==": padded == want, ">": have > want, "<=": padded <= want}[op]
        if not ok:
            return False
    return True


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UsageError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[name]
