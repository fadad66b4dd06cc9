"""Where an ONNX Runtime artifact spends its time, per op type (ORT's own profiler).

    python benchmarks/onnx_profile.py gend-lite-int8 [--runs 20]

Builds (or reuses) the zoo model's ONNX artifact, runs it at batch 1 with profiling on and
prints milliseconds per run by op type: whether INT8 convolutions fused into ``QLinearConv``,
and how much time float ops, ``DequantizeLinear`` and layout ``Transpose`` take. Used when INT8
is not faster than FP32 on ONNX Runtime (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import onnxruntime as ort

from deepfake_sdk.building.build import ensure_artifact
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.quantization.calibration import packaged
from deepfake_sdk.zoo import get_spec


def op_times(model_path: Path, batch, runs: int, threads: int = 2) -> dict[str, float]:
    """Milliseconds per run spent in each op type (kernel time only)."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = threads
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: batch}
    for _ in range(runs):
        session.run(None, feed)
    totals: dict[str, float] = {}
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + event["dur"] / 1000 / runs
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="zoo name, e.g. gend-lite-int8 or gend-lite-fp32")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    spec = get_spec(args.model)
    artifact = ensure_artifact(spec, "onnx", progress=False)
    batch = to_batch(packaged(1, spec.preprocessing).crops, spec.preprocessing)
    times = op_times(artifact.path / artifact.manifest["model_file"], batch, args.runs)
    print(f"{spec.name} on ONNX Runtime {ort.__version__}: {sum(times.values()):.2f} ms/run in kernels")
    for op, ms in times.items():
        print(f"  {op:<24}{ms:8.2f} ms")


if __name__ == "__main__":
    main()
