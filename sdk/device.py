"""What this device is, and which target ``load()`` should use on it.

INT8 speed depends less on the vendor than on the integer dot-product instructions the CPU has:
without VNNI an x86 INT8 GEMM runs at about the FP32 FMA rate (OpenVINO's INT8 was *slower* than
its FP32 on an AVX2 EPYC), with AVX-512 VNNI or AMX the same artifacts run 2-3x faster, and the
runtimes reorder. So the preference is a table keyed by **CPU class** (``amx``, ``avx512-vnni``,
``avx2``, ``neon-dot``, ``neon``, ``apple``), each row an order of targets with the evidence
behind it: measured by ``benchmarks/targets.py`` on a machine of that class, or assumed (and
said so). Only targets whose runtime imports here are candidates; ``target=`` or
``$DEEPFAKE_SDK_TARGET`` overrides. ``deepfake-sdk doctor`` prints all of it.
"""
from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from typing import Mapping

from .errors import MissingDependencyError, UsageError
from .runtimes.base import runtime_class
from .targets import TARGETS, get_target

TARGET_ENV = "DEEPFAKE_SDK_TARGET"

# /proc/cpuinfo flag (x86 "flags", ARM "Features") -> the name doctor prints.
FEATURE_FLAGS = {
    "avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16", "amx_tile": "AMX", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16",
    "asimd": "NEON", "asimddp": "NEON SDOT", "i8mm": "I8MM", "sve": "SVE",
}


@dataclass(frozen=True)
class DeviceInfo:
    system: str  # Linux, Darwin, Windows, Android
    machine: str  # x86_64, arm64, aarch64
    cpu_vendor: str  # GenuineIntel, AuthenticAMD, Apple, ...
    cpus: int
    features: frozenset[str] = frozenset()  # keys of FEATURE_FLAGS this CPU reports
    cpu_model: str = ""

    @property
    def is_arm(self) -> bool:
        return self.machine.lower() in ("arm64", "aarch64", "armv8l", "armv7l")

    @property
    def cpu_class(self) -> str:
        """The row of :data:`SPEED_ORDER` this device falls in."""
        if self.system in ("Darwin", "iOS"):
            return "apple"
        if self.is_arm or self.system == "Android":
            return "neon-dot" if "asimddp" in self.features else "neon"
        if "amx_int8" in self.features:
            return "amx"
        if self.features & {"avx512_vnni", "avx_vnni"}:
            return "avx512-vnni"
        if "avx2" in self.features:
            return "avx2"
        return "x86-baseline"

    def feature_names(self) -> list[str]:
        return [FEATURE_FLAGS[f] for f in FEATURE_FLAGS if f in self.features]

    def describe(self) -> dict:
        """What an artifact's manifest and a verify report record about the checking machine."""
        return {"system": self.system, "machine": self.machine, "cpu_vendor": self.cpu_vendor,
                "cpu_model": self.cpu_model, "cpu_class": self.cpu_class, "features": self.feature_names()}


def _read_cpuinfo() -> tuple[str, str, frozenset[str]]:
    vendor, model, flags = "", "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key in ("model name", "Hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return vendor, model, frozenset(flags & FEATURE_FLAGS.keys())


def _darwin_cpu() -> tuple[str, str, frozenset[str]]:
    try:
        brand = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        brand = ""
    arm = platform.machine() == "arm64"
    return ("Apple" if arm else "GenuineIntel"), brand, frozenset({"asimd", "asimddp"} if arm else set())


def device_info() -> DeviceInfo:
    vendor, model, features = _darwin_cpu() if platform.system() == "Darwin" else _read_cpuinfo()
    system = "Android" if "ANDROID_ROOT" in os.environ else platform.system()
    return DeviceInfo(system, platform.machine(), vendor, os.cpu_count() or 1, features, model)


@dataclass(frozen=True)
class Startup:
    """What one runtime costs a user on a CPU class (``benchmarks/startup.py``, gend-int8 after a
    cache hit, 2 cores): the first answer of a fresh process (import + ``load`` + first ``predict``,
    face detection included) and the steady ``predict`` after it."""

    first_answer_s: float
    steady_ms: float


@dataclass(frozen=True)
class SpeedOrder:
    """Targets fastest first (INT8 gend, batch 1) on one CPU class, and what says so; ``startup``
    where the class's start-up was measured (empty: not measured, the order alone decides)."""

    order: tuple[str, ...]
    measured: bool
    evidence: str
    startup: Mapping[str, Startup] = field(default_factory=dict)
    startup_evidence: str = ""


# Latencies: median ms per face crop of the GenD INT8 builds named in each row (GenD-DINOv2 ViT-S/14
# and GenD-CLIP ViT-B/16 at 224 px; today's gend-int8 is the multi-block GenD-CLIP, whose order is the
# CLIP one), 2 cores, timed interleaved by benchmarks/targets.py and device_order.py (docs/targets.md).
SPEED_ORDER: dict[str, SpeedOrder] = {
    "amx": SpeedOrder(("tflite", "openvino", "executorch", "onnx", "coreml"), True,
                      "measured on an Intel Xeon (AMX-INT8, 2 cores), INT8 ms per face, each target's FP32/INT8 "
                      "pair interleaved: GenD-DINOv2 tflite 18.7, openvino 26.1, executorch 37.7, onnx 73.3; "
                      "GenD-CLIP tflite 36.6, openvino 62.2, executorch 87.6, onnx 133.6 "
                      "(benchmarks/results/amx, 2026-12-02)"),
    "avx512-vnni": SpeedOrder(("tflite", "executorch", "openvino", "onnx", "coreml"), True,
                              "measured on an AMD EPYC (AVX-512 VNNI, no AMX), the four default INT8 builds "
                              "timed interleaved in one loop, two runs, ms: tflite 19.9/18.0, executorch "
                              "21.5/24.3 (8 Linears float since 2026-12-01), openvino 31.5/35.9, onnx 37.3/39.4 "
                              "(benchmarks/README.md, 2026-12-01)",
                              {"tflite": Startup(1.72, 141), "executorch": Startup(1.80, 163),
                               "onnx": Startup(1.84, 224), "openvino": Startup(2.15, 190)},
                              "gend-int8 (multi-block GenD-CLIP) on an AMD EPYC (AVX-512 VNNI, 2 cores), fresh "
                              "processes after a cache hit, runtimes interleaved, median of 3: first answer = import "
                              "+ load + first predict; steady = one predict with face detection "
                              "(benchmarks/results/startup, 2026-12-07)"),
    "avx2": SpeedOrder(("tflite", "executorch", "onnx", "openvino", "coreml"), True,
                       "measured on an AMD EPYC (AVX2, no VNNI), INT8 ms: tflite 65.9, executorch 66.0, "
                       "onnx 86.4, openvino 86.6 (benchmarks/results/targets.json, session 3; ONNX and "
                       "OpenVINO then had static recipes, OpenVINO's run-time recipe measured 1.11-1.15x "
                       "its FP32 there)"),
    "x86-baseline": SpeedOrder(("onnx", "openvino", "executorch", "tflite", "coreml"), False,
                               "assumed: no AVX2, ONNX Runtime has the widest x86 kernel coverage"),
    "neon-dot": SpeedOrder(("executorch", "tflite", "onnx", "openvino", "coreml"), False,
                           "assumed: XNNPACK's SDOT kernels (ExecuTorch, LiteRT) are the mobile INT8 paths"),
    "neon": SpeedOrder(("executorch", "tflite", "onnx", "openvino", "coreml"), False,
                       "assumed: XNNPACK is the tuned ARM INT8 path"),
    "apple": SpeedOrder(("coreml", "executorch", "onnx", "tflite", "openvino"), False,
                        "assumed: Core ML reaches the Neural Engine; prediction is macOS/iOS only"),
}


def speed_order(info: DeviceInfo) -> SpeedOrder:
    return SPEED_ORDER[info.cpu_class]


def preference(info: DeviceInfo) -> list[str]:
    order = speed_order(info).order
    return [t for t in order if t in TARGETS] + [t for t in TARGETS if t not in order]


# A one-shot caller (one CLI prediction) takes the runtime that answers first among those whose
# steady per-image latency is within this factor of the throughput choice's: a few images never
# repay a slower start, a scan of thousands would not notice it.
ONE_SHOT_STEADY_SLACK = 1.5
PREFER = ("throughput", "first-answer")


@dataclass(frozen=True)
class Selection:
    target: str
    reason: str


def select_target(precision: str, requested: str | None = None, info: DeviceInfo | None = None,
                  drifting: Mapping[str, str] | None = None, prefer: str = "throughput") -> Selection:
    """The target to use, and why (requested, or the first available in this device's order).

    ``drifting`` names targets whose recorded numerics for this model miss the release gate
    (``zoo.recorded_drift``): they are passed over for the next available one, and taken only
    when every available target drifts (the reason then says so). A request by name is obeyed.
    ``prefer="first-answer"`` (a one-shot call) then takes, where this CPU class's start-up was
    measured, the clean target that answers first among those within
    :data:`ONE_SHOT_STEADY_SLACK` of the throughput choice's steady latency."""
    if prefer not in PREFER:
        raise UsageError(f"prefer must be one of {', '.join(PREFER)}, not {prefer!r}")
    if requested:
        return Selection(get_target(requested).name, "requested with target=")
    if os.environ.get(TARGET_ENV):
        return Selection(get_target(os.environ[TARGET_ENV]).name, f"requested with ${TARGET_ENV}")
    info, drifting = info or device_info(), drifting or {}
    order = [n for n in preference(info) if precision in TARGETS[n].precisions]
    available = [n for n in order if runtime_class(n).is_available()]
    if not available:
        raise MissingDependencyError(
            f"no runtime for {precision} artifacts is installed "
            f"({'; '.join(f'{n} (runtime not installed)' for n in order)}). "
            "Install one, e.g. pip install 'deepfake-sdk[onnx]'"
        )
    basis = "measured" if speed_order(info).measured else "assumed"
    chosen = next((n for n in available if n not in drifting), available[0])
    if prefer == "first-answer":
        quicker = first_to_answer(chosen, [n for n in available if n not in drifting], speed_order(info).startup)
        if quicker != chosen:
            s = speed_order(info).startup
            return Selection(quicker, f"one-shot call: answers first on CPU class {info.cpu_class} "
                                      f"({s[quicker].first_answer_s:.1f} s vs {chosen} {s[chosen].first_answer_s:.1f} s, "
                                      f"steady {s[quicker].steady_ms:.0f} vs {s[chosen].steady_ms:.0f} ms; measured)")
    skipped = [f"{n} ({'recorded ' + drifting[n] if n in available else 'runtime not installed'})"
               for n in order[: order.index(chosen)]]
    clean = " without recorded drift" if chosen not in drifting and any(n in drifting for n in available) else ""
    why = f"fastest available{clean} on CPU class {info.cpu_class} ({basis} order)"
    if chosen in drifting:
        why += f"; every available target has recorded drift, this one {drifting[chosen]}"
    if skipped:
        why += f"; skipped {', '.join(skipped)}"
    return Selection(chosen, why)


def first_to_answer(chosen: str, clean: list[str], startup: Mapping[str, Startup]) -> str:
    """Among ``clean`` targets, the measured one with the earliest first answer whose steady latency
    stays within :data:`ONE_SHOT_STEADY_SLACK` of ``chosen``'s; ``chosen`` when nothing is measured."""
    if chosen not in startup:
        return chosen
    limit = startup[chosen].steady_ms * ONE_SHOT_STEADY_SLACK
    fits = [t for t in clean if t in startup and startup[t].steady_ms <= limit]
    return min(fits, key=lambda t: startup[t].first_answer_s, default=chosen)
