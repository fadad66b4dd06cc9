"""What this device is, and which target ``load()`` should use on it.

Preference follows what runs best where: Apple -> Core ML; Android / ARM Linux -> ExecuTorch,
then TFLite; Intel x86 -> OpenVINO; other x86 -> ONNX Runtime. Only targets in the table whose
runtime imports here are candidates; ``target=`` or ``$DEEPFAKE_SDK_TARGET`` overrides.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from .targets import TARGETS, get_target

TARGET_ENV = "DEEPFAKE_SDK_TARGET"


@dataclass(frozen=True)
class DeviceInfo:
    system: str  # Linux, Darwin, Windows, Android
    machine: str  # x86_64, arm64, aarch64
    cpu_vendor: str  # GenuineIntel, AuthenticAMD, Apple, ...
    cpus: int

    @property
    def is_arm(self) -> bool:
        return self.machine.lower() in ("arm64", "aarch64", "armv8l", "armv7l")


def device_info() -> DeviceInfo:
    vendor = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    vendor = line.split(":", 1)[1].strip()
                    break
    except OSError:
        vendor = "Apple" if platform.system() == "Darwin" and platform.machine() == "arm64" else ""
    system = "Android" if "ANDROID_ROOT" in os.environ else platform.system()
    return DeviceInfo(system, platform.machine(), vendor, os.cpu_count() or 1)


def preference(info: DeviceInfo) -> list[str]:
    if info.system in ("Darwin", "iOS"):
        order = ["coreml", "executorch", "onnx", "tflite", "openvino"]
    elif info.system == "Android" or info.is_arm:
        order = ["executorch", "tflite", "onnx", "openvino", "coreml"]
    elif info.cpu_vendor == "GenuineIntel":
        order = ["openvino", "onnx", "executorch", "tflite", "coreml"]
    else:
        order = ["onnx", "openvino", "executorch", "tflite", "coreml"]
    return [t for t in order if t in TARGETS] + [t for t in TARGETS if t not in order]


@dataclass(frozen=True)
class Selection:
    target: str
    reason: str


def select_target(precision: str, requested: str | None = None) -> Selection:
    """The target to use, and why (requested, or the first available in this device's order)."""
    from .runtimes.base import runtime_class

    if requested:
        return Selection(get_target(requested).name, "requested with target=")
    if os.environ.get(TARGET_ENV):
        return Selection(get_target(os.environ[TARGET_ENV]).name, f"requested with ${TARGET_ENV}")
    info = device_info()
    skipped = []
    for name in preference(info):
        target = TARGETS[name]
        if precision not in target.precisions:
            continue
        if runtime_class(name).is_available():
            why = f"preferred on {info.system}/{info.machine} ({info.cpu_vendor or 'unknown CPU'})"
            if skipped:
                why += f"; skipped {', '.join(skipped)}"
            return Selection(name, why)
        skipped.append(f"{name} (runtime not installed)")
    from .errors import MissingDependencyError

    raise MissingDependencyError(
        f"no runtime for {precision} artifacts is installed ({'; '.join(skipped)}). "
        "Install one, e.g. pip install 'deepfake-sdk[onnx]'"
    )
