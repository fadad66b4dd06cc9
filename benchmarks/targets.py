"""Export every model to every target at FP32 and INT8; write size, parity, latency and the
roofline column (fraction of this CPU's peak) as JSON + three plots.

    python benchmarks/targets.py --data ../shared/data --out benchmarks/results --models all

Quote ratios from one run (e.g. INT8 vs FP32 latency of the same runtime), not absolute times.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from deepfake_sdk.verification.benchmark import benchmark, format_rows, plot, plot_auc_vs_latency, plot_int8_speedup
from deepfake_sdk.device import device_info
from deepfake_sdk.verification.roofline import cpu_peak
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.training.data import build_crops
from deepfake_sdk.zoo import get_spec, list_models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--targets", default="all")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N crops")
    ap.add_argument("--models", default="gend-fp32", help="comma-separated zoo names, or 'all' (every shipped model)")
    args = ap.parse_args()
    crops = build_crops(args.data)
    images, labels = crops.images, crops.labels()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    targets = list(TARGETS) if args.targets == "all" else args.targets.split(",")
    peak = cpu_peak()
    rows = [row for model in model_names(args.models)
            for row in benchmark(targets, ["fp32", "int8"], images, labels, calibration=args.data, model_name=model,
                                 peak=peak)]
    print(format_rows(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "targets.json").write_text(json.dumps(
        {"machine": platform.platform(), "cpu": device_info().describe(), "peak": peak.to_dict(),
         "crops": int(len(images)), "rows": [r.to_dict() for r in rows]}, indent=1))
    plot(rows, args.out / "targets_latency.png")
    plot_auc_vs_latency(rows, args.out / "auc_vs_latency.png")
    plot_int8_speedup(rows, args.out / "int8_speedup.png")


def model_names(models: str) -> list[str]:
    """``all``: the FP32 reference of every model whose weights ship; else the names given."""
    if models != "all":
        return models.split(",")
    specs = [get_spec(name) for name in list_models()]
    return [s.name for s in specs if s.precision == "fp32" and (s.weights is None or s.weights_path.is_file())]


if __name__ == "__main__":
    main()
