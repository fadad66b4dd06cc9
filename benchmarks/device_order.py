"""The evidence behind a CPU class's row of ``SPEED_ORDER`` (sdk/device.py).

Builds (or takes from the cache) the default INT8 artifact ``load()`` serves on each runnable
target and times them in one interleaved loop, batch 1, so that machine drift hits every target
alike; prints the median ms per target, twice. ``python benchmarks/device_order.py``.
"""
from __future__ import annotations

import numpy as np

from deepfake_sdk.verification.benchmark import interleaved_latency
from deepfake_sdk.building.build import ensure_artifact
from deepfake_sdk.device import device_info
from deepfake_sdk.runtimes.base import runtime_class, runtime_for
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.zoo import get_spec


def main(model: str = "gend-int8", rounds: int = 30, repeats: int = 2) -> None:
    targets = [t for t in TARGETS if TARGETS[t].predicts_on_linux and runtime_class(t).is_available()]
    spec = get_spec(model)
    runs = [runtime_for(ensure_artifact(spec, t, progress=False)).run for t in targets]
    size = spec.preprocessing.size
    sample = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    print(f"{spec.name} on CPU class {device_info().cpu_class}, batch 1, {rounds} interleaved rounds")
    for rep in range(repeats):
        timings = interleaved_latency(runs, sample, rounds=rounds)
        print(f"run {rep + 1}: " + ", ".join(f"{t} {x.latency_ms:.1f} ms" for t, x in zip(targets, timings)))


if __name__ == "__main__":
    main()
