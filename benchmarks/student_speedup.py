"""Distilled students against their teacher, INT8 on the same runtime, timed interleaved.

    python benchmarks/student_speedup.py --data ../shared/data --out benchmarks/results/avx512-vnni
    (--students a-int8,b-int8 to time several distilled students in the same rounds)

Builds (or reuses from the cache) each student and the teacher (default ``gend-int8``, the
default GenD every student is distilled from) on each runnable target, then times them at
batch 1 in alternating rounds (``benchmark.interleaved_latency``), so each quoted speed-up is
the median of per-round ratios on one machine in one run. Writes ``student_speedup.json``
(latency, speed-up and artifact size per target and model).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from deepfake_sdk.verification.benchmark import bar_chart, interleaved_latency
from deepfake_sdk.building.build import ensure_artifact
from deepfake_sdk.device import device_info
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.quantization.calibration import packaged
from deepfake_sdk.runtimes.base import runtime_class, runtime_for
from deepfake_sdk.zoo import get_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--targets", default="onnx,openvino,executorch,tflite")
    ap.add_argument("--students", default="gend-lite-int8", help="comma-separated INT8 zoo names")
    ap.add_argument("--teacher", default="gend-int8")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--data", type=Path, help="calibrate as benchmarks/targets.py --data does (reuses its artifacts)")
    args = ap.parse_args()
    students, teacher = [get_spec(n) for n in args.students.split(",")], get_spec(args.teacher)
    face = to_batch(packaged(1, teacher.preprocessing).crops, teacher.preprocessing)
    rows = []
    for target in args.targets.split(","):
        if not runtime_class(target).is_available():
            rows.append({"target": target, "status": "runtime not available here"})
            continue
        artifacts = [ensure_artifact(spec, target, calibration=args.data, progress=False) for spec in (teacher, *students)]
        timings = interleaved_latency([runtime_for(a).run for a in artifacts], face, args.rounds)
        row = {"target": target, "teacher_ms": round(timings[0].latency_ms, 2),
               "teacher_mb": round(artifacts[0].size_bytes() / 1e6, 2), "status": "ok", "students": {}}
        for spec, artifact, timing in zip(students, artifacts[1:], timings[1:]):
            row["students"][spec.name] = {"ms": round(timing.latency_ms, 2), "speedup": round(1 / timing.ratio_to_first, 2),
                                          "mb": round(artifact.size_bytes() / 1e6, 2)}
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"cpu": device_info().describe(), "students": [s.name for s in students], "teacher": teacher.name,
              "rounds": args.rounds, "rows": rows, "date": time.strftime("%Y-%m-%d")}
    (args.out / "student_speedup.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(record, args.out / "student_speedup.png")


def plot(record: dict, path: Path) -> None:
    """Latency per target: the teacher's bar, then each student's with its speed-up."""
    bars = []
    for row in (r for r in record["rows"] if r.get("status") == "ok"):
        bars.append((f"{row['target']}: {record['teacher']}", row["teacher_ms"]))
        bars += [(f"{row['target']}: {name} ({s['speedup']}x)", s["ms"]) for name, s in row["students"].items()]
    bar_chart(f"INT8 latency at batch 1, ms (median of {record['rounds']} interleaved rounds)", bars, path, unit=" ms",
              left=420)


if __name__ == "__main__":
    main()
