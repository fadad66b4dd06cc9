"""GenD's CPU budget recipe against the full recipe, on the same held-out folds and data.

    python benchmarks/budget_vs_full.py --data ../shared/data --model gend-clip-b16-fp32 \\
        --folds family:faceswap,family:gan_full_synthesis --cap 100 --epochs 1

The full recipe tunes every LayerNorm with images through the whole ViT (what a GPU runs); on
2 CPU cores it only fits on a reduced set, so both recipes run here on the same reduced set
(``--cap`` crops per source and label), with the same epochs and seed: the difference is the
recipe alone. Writes ``results/budget_vs_full.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from deepfake_sdk.metrics import roc_auc
from deepfake_sdk.models.gend.train import Experiment, TrainConfig, full_scores
from deepfake_sdk.training.folds import make_folds
from deepfake_sdk.zoo import get_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--model", default="gend-clip-b16-fp32")
    ap.add_argument("--folds", default="family:faceswap")
    ap.add_argument("--cap", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--budget-blocks", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "budget_vs_full.json")
    args = ap.parse_args()
    spec = get_spec(args.model)
    budget_cfg = TrainConfig(epochs=args.epochs, per_source_cap=args.cap, budget_blocks=args.budget_blocks)
    budget = Experiment.prepare(args.data, spec, budget_cfg)
    full = replace(budget, cfg=replace(budget_cfg, budget_blocks=None), cache=None)
    folds = {f.name: f for f in make_folds(budget.crops.samples)[0]}
    rows = []
    for name in args.folds.split(","):
        fold, labels = folds[name], budget.crops.labels()
        row = {"fold": name, "test_real": int((labels[fold.test] == 0).sum()), "test_fake": int(labels[fold.test].sum())}
        for recipe, exp in (("budget", budget), ("full", full)):
            start = time.time()
            model, log = exp.train(fold.train)
            scores = full_scores(model, exp.crops.images[fold.test], spec.preprocessing)  # both scored in FP32
            row[recipe] = {"auc": roc_auc(labels[fold.test], scores), "train_seconds": round(log.seconds, 1),
                           "wall_seconds": round(time.time() - start, 1)}
            print(name, recipe, row[recipe], flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": spec.name, "cap_per_source_and_label": args.cap, "epochs": args.epochs,
                                    "budget_blocks": args.budget_blocks, "machine": platform.platform(),
                                    "processor": platform.processor(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
