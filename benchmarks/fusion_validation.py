"""Fusion rules on the validation set: does combining GenDF and LFM beat the better of the two?

    python benchmarks/fusion_validation.py --data ../shared/data

Each member's FP32 reference scores ``manifest_validation.csv`` (cached references, the ones
``card MODEL --validate`` builds). The rules compared need nothing fitted on fakes: ``max`` of the
margins (what ``fused-*`` ships), their ``mean``, and ``zmean``, the mean of margins standardised
by each member's mean and spread on the real pool, faces neither member trained on (so the
statistics are out of sample; a learned stacker would need out-of-fold fake scores too, which
the members' cards do not keep). Writes ``results/fusion/validation.json`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from deepfake_sdk.models.factory import create_model
from deepfake_sdk.models.fused.rules import margins_from_probs
from deepfake_sdk.verification.numerics import reference_for
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.training import validation
from deepfake_sdk.training.folds import real_pool
from deepfake_sdk.training.items import load_crops
from deepfake_sdk.zoo import get_spec

MEMBERS = ("gendf", "lfm")


def pool_margins(name: str, data: Path) -> np.ndarray:
    """FP32 margins of ``name`` on the real pool (real-only sources no family trains on)."""
    spec = get_spec(f"{name}-fp32")
    crops = load_crops(data, spec.preprocessing)
    pool = set(real_pool(crops.samples))
    idx = [i for i, s in enumerate(crops.samples) if s.source in pool]
    model = create_model(spec).eval()
    with torch.inference_mode():
        logits = np.concatenate([model(torch.from_numpy(to_batch(crops.images[idx[i : i + 32]], spec.preprocessing))).numpy()
                                 for i in range(0, len(idx), 32)])
    return logits[:, 1] - logits[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fusion" / "validation.json"))
    args = ap.parse_args()
    data = Path(args.data)
    folder = validation.validation_folder(data)
    refs = {m: reference_for(m, folder) for m in MEMBERS}
    paths = [r["path"] for r in refs[MEMBERS[0]].samples]
    margins = {m: margins_from_probs(np.array([float(r["prob"]) for r in refs[m].samples])) for m in MEMBERS}
    assert all([r["path"] for r in refs[m].samples] == paths for m in MEMBERS), "members scored other faces"
    stats = {m: (float(p.mean()), float(p.std())) for m, p in ((m, pool_margins(m, data)) for m in MEMBERS)}
    stacked = np.stack([margins[m] for m in MEMBERS])
    z = np.stack([(margins[m] - stats[m][0]) / stats[m][1] for m in MEMBERS])
    scores = {**{m: margins[m] for m in MEMBERS}, "max": stacked.max(0), "mean": stacked.mean(0), "zmean": z.mean(0)}
    report = {name: validation.scored_report(data, paths, s) for name, s in scores.items()}
    best_member = max(MEMBERS, key=lambda m: report[m]["overall"]["auc"])
    out = {"members": list(MEMBERS), "real_pool_margin_stats": stats, "reports": report,
           "best_member": best_member,
           "rules_beating_best_member": [r for r in ("max", "mean", "zmean")
                                         if report[r]["overall"]["auc"] > report[best_member]["overall"]["auc"]]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(validation.table(report))
    print(f"best member {best_member}; rules above it: {out['rules_beating_best_member'] or 'none'}")


if __name__ == "__main__":
    main()
