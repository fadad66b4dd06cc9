"""Export every model to every target at FP32 and INT8; write size, parity and latency as JSON + plot.

    python benchmarks/targets.py --data ../shared/data --out benchmarks/results --models gend-clip-b16,gend-dinov2-s14

Quote ratios from one run (e.g. INT8 vs FP32 latency of the same runtime), not absolute times.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from deepfake_sdk.benchmark import benchmark, format_rows, plot
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.training.data import build_crops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--targets", default="all")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N crops")
    ap.add_argument("--models", default="gend-fp32", help="comma-separated zoo names")
    args = ap.parse_args()
    crops = build_crops(args.data)
    images, labels = crops.images, crops.labels()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    targets = list(TARGETS) if args.targets == "all" else args.targets.split(",")
    rows = [row for model in args.models.split(",")
            for row in benchmark(targets, ["fp32", "int8"], images, labels, calibration=args.data, model_name=model)]
    print(format_rows(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "targets.json").write_text(json.dumps(
        {"machine": platform.platform(), "processor": platform.processor(), "crops": int(len(images)),
         "rows": [r.to_dict() for r in rows]}, indent=1))
    plot(rows, args.out / "targets_latency.png")


if __name__ == "__main__":
    main()
