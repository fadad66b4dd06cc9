"""The distilled student against its teacher, INT8 on the same runtime, timed interleaved.

    python benchmarks/student_speedup.py --data ../shared/data --out benchmarks/results/amx

Builds (or reuses from the cache) ``gend-lite-int8`` and the teacher's ``gend-clip-b16-int8``
on each runnable target, then times both at batch 1 in alternating rounds
(``benchmark.interleaved_latency``), so the quoted speed-up is the median of per-round ratios
on one machine in one run. Writes ``student_speedup.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


from deepfake_sdk.verification.benchmark import interleaved_latency
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
    ap.add_argument("--student", default="gend-lite-int8")
    ap.add_argument("--teacher", default="gend-clip-b16-int8")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--data", type=Path, help="calibrate as benchmarks/targets.py --data does (reuses its artifacts)")
    args = ap.parse_args()
    student, teacher = get_spec(args.student), get_spec(args.teacher)
    face = to_batch(packaged(1, student.preprocessing).crops, student.preprocessing)
    rows = []
    for target in args.targets.split(","):
        if not runtime_class(target).is_available():
            rows.append({"target": target, "status": "runtime not available here"})
            continue
        runs = [runtime_for(ensure_artifact(spec, target, calibration=args.data, progress=False)).run for spec in (teacher, student)]
        teacher_t, student_t = interleaved_latency(runs, face, args.rounds)
        rows.append({"target": target, "teacher_ms": round(teacher_t.latency_ms, 2),
                     "student_ms": round(student_t.latency_ms, 2),
                     "speedup": round(1 / student_t.ratio_to_first, 2), "status": "ok"})
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "student_speedup.json").write_text(json.dumps(
        {"cpu": device_info().describe(), "student": student.name, "teacher": teacher.name,
         "rounds": args.rounds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
