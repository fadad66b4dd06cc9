"""This CPU's arithmetic peak, for the benchmark's roofline column (attained / peak).

Peak = cores used x clock x operations per cycle per core for the widest instructions the CPU
reports (``device.DeviceInfo.features``). Per-cycle throughputs are the vendors' documented
issue rates for one core, counting a multiply-accumulate as 2 operations:

=================  ====================================================  ==========  ==========
class              instructions                                          FP32 /cyc   INT8 /cyc
=================  ====================================================  ==========  ==========
``amx``            AMX TDPBUSD (1024 INT8 MAC), AVX-512 2 FMA ports         64          2048
``avx512-vnni``    VPDPBUSD x2 ports (2 x 64 INT8 MAC), 2 FMA ports         64           256
``avx2``           VPMADDUBSW+VPMADDWD (32 MAC per port pair), 2 FMA        32           128
``neon-dot``       SDOT x2 pipes (2 x 16 INT8 MAC), 2 FMA pipes             16            64
``neon``           SMLAL-style widening MACs (16 MAC), 2 FMA pipes          16            32
=================  ====================================================  ==========  ==========

These are upper bounds no real network reaches (memory traffic, depthwise convolutions and
float glue ops are not GEMMs), so the column is a fraction to compare runtimes and models by,
not a promise. The clock is the CPU's reported maximum when the kernel exposes it, else the
current ``cpu MHz`` (a VM's nominal clock: turbo is not counted, so the fraction may read high).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..device import DeviceInfo, device_info

# cpu class -> (FP32 FLOP per cycle per core, INT8 ops per cycle per core, instructions assumed)
OPS_PER_CYCLE: dict[str, tuple[int, int, str]] = {
    "amx": (64, 2048, "AMX-INT8 TDPBUSD; AVX-512 FMA x2"),
    "avx512-vnni": (64, 256, "AVX-512 VNNI VPDPBUSD x2; AVX-512 FMA x2"),
    "avx2": (32, 128, "AVX2 VPMADDUBSW/VPMADDWD; FMA x2"),
    "x86-baseline": (16, 32, "SSE"),
    "neon-dot": (16, 64, "NEON SDOT x2; FMA x2"),
    "neon": (16, 32, "NEON widening MAC; FMA x2"),
    "apple": (32, 64, "NEON SDOT x4 pipes (CPU only; the ANE is not counted)"),
}


@dataclass(frozen=True)
class Peak:
    """The arithmetic limit of the cores a benchmark uses, and how it was derived."""

    cpu_class: str
    cores: int
    ghz: float
    clock_source: str
    fp32_gflops: float
    int8_gops: float
    instructions: str

    def for_precision(self, precision: str) -> float:
        """GOP/s the roofline divides by: INT8 rows by the integer peak, others by FP32's."""
        return self.int8_gops if precision == "int8" else self.fp32_gflops

    def to_dict(self) -> dict:
        return asdict(self)


def clock_ghz(cpuinfo: str | None = None, max_freq_file: Path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
              ) -> tuple[float, str]:
    """(GHz, where it came from): cpufreq's maximum when present, else /proc/cpuinfo's cpu MHz."""
    try:
        return int(max_freq_file.read_text().strip()) / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.lower().startswith("cpu mhz"):
            return float(line.split(":", 1)[1]) / 1000, "/proc/cpuinfo cpu MHz (nominal)"
    return 2.0, "unknown: 2.0 GHz assumed"


def cpu_peak(info: DeviceInfo | None = None, cores: int | None = None, ghz: tuple[float, str] | None = None) -> Peak:
    """The peak for ``cores`` (default: the CPUs this process may run on) of this CPU class."""
    info = info or device_info()
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else info.cpus
    freq, source = ghz or clock_ghz()
    fp32, int8, instructions = OPS_PER_CYCLE.get(info.cpu_class, OPS_PER_CYCLE["x86-baseline"])
    return Peak(info.cpu_class, cores, round(freq, 3), source, round(cores * freq * fp32, 1),
                round(cores * freq * int8, 1), instructions)


def peak_fraction(macs: int | None, latency_ms: float | None, precision: str, peak: Peak) -> float | None:
    """Attained arithmetic (2 x MACs per image / latency) as a fraction of ``peak``."""
    if not macs or not latency_ms:
        return None
    attained_gops = 2 * macs / (latency_ms / 1000) / 1e9
    return attained_gops / peak.for_precision(precision)
