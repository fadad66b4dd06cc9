"""Would a ``fused`` entry beat each family alone on unseen families? (issue 12)

    python benchmarks/fusion_heldout.py --data ../shared/data

Trains GenDF's and LFM's fold models exactly as their recipes do (same folds, same items, same
configs; GenDF reads its cached CLIP tokens), scores the same held-out faces of each family fold
with both, and compares each family alone with fusion rules on the held-out logits:

- ``mean``: the mean of the two logits (no parameters);
- ``max``: the larger logit (a face is as fake as its most suspicious detector says);
- ``learned``: a logistic combiner of the two logits fitted on the *other* family folds'
  held-out scores (leave one family out), so no fold chooses its own weights;
- ``chosen``: on each fold, the rule the *other* folds rank best (what a fused entry would
  ship, measured without choosing on the faces it is scored on).

Beside them, the metadata-only control (the file's traits alone) on the same faces. Writes
``benchmarks/results/fusion/heldout.json``; a fused entry is worth building only where a rule
beats both families on the mean of unseen families.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepfake_sdk.device import device_info
from deepfake_sdk.metrics import roc_auc
from deepfake_sdk.models.gendf import train as gendf_train
from deepfake_sdk.models.lfm import train as lfm_train
from deepfake_sdk.training.baselines import LogisticProbe
from deepfake_sdk.zoo import get_spec

OUT = Path(__file__).resolve().parent / "results" / "fusion" / "heldout.json"
RULES = ("mean", "max", "learned")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def fold_scores(data: Path) -> list[dict]:
    """Per family fold: the held-out faces, their labels and both families' held-out scores."""
    # The recipe's own configs (all folds), so GenDF's token cache key is the one training wrote.
    g = gendf_train.Run.prepare(data, get_spec("gendf-fp32"), gendf_train.GenDFConfig())
    lcfg = lfm_train.LFMConfig()
    lrun = lfm_train.Run.prepare(data, get_spec("lfm-fp32"), lcfg)
    assert [s.path for s in g.crops.samples] == [s.path for s in lrun.crops.samples], "both read the same crops"
    labels = g.crops.labels()
    out = []
    for fold in (f for f in g.chosen_folds() if f.kind == "family"):
        test = g.test_crops(fold)
        train = g.train_items(fold.train)
        if not (g.items.labels[train] == 0).any() or len(set(labels[test])) < 2:
            continue
        t0 = time.time()
        head, _ = gendf_train.train_head(g.cached, g.items, train, g.dim, g.cfg, g.cfg.fold_epochs, g.grid)
        gendf = gendf_train.head_scores(head, g.cached, test)
        model, _ = lfm_train.train_lfm(lrun.items, lrun.item_index(fold.train, lcfg.fold_per_source_cap), lcfg,
                                       lrun.spec.preprocessing, lcfg.fold_epochs)
        lfm = lfm_train.scores(model, lrun.crops.images[test], lrun.spec.preprocessing)
        meta = LogisticProbe().fit(g.metadata[fold.train], labels[fold.train]).predict(g.metadata[test])
        out.append({"fold": fold.name, "faces": int(len(test)), "labels": labels[test].tolist(),
                    "gendf": gendf.tolist(), "lfm": lfm.tolist(), "metadata": meta.tolist()})
        print(f"[fold] {fold.name}: {len(test)} faces, {time.time() - t0:.0f} s", flush=True)
    return out


def compare(folds: list[dict]) -> dict:
    rows = []
    for i, f in enumerate(folds):
        y = np.array(f["labels"])
        zg, zl = logit(np.array(f["gendf"])), logit(np.array(f["lfm"]))
        others = [o for j, o in enumerate(folds) if j != i]
        xo = np.concatenate([np.stack([logit(np.array(o["gendf"])), logit(np.array(o["lfm"]))], 1) for o in others])
        yo = np.concatenate([np.array(o["labels"]) for o in others])
        learned = LogisticProbe().fit(xo, yo).predict(np.stack([zg, zl], 1))
        rows.append({"fold": f["fold"], "faces": f["faces"], "gendf": roc_auc(y, zg), "lfm": roc_auc(y, zl),
                     "mean": roc_auc(y, (zg + zl) / 2), "max": roc_auc(y, np.maximum(zg, zl)),
                     "learned": roc_auc(y, learned), "metadata": roc_auc(y, np.array(f["metadata"]))})
    for i, r in enumerate(rows):  # the rule the other folds pick, scored on this one
        others = [o for j, o in enumerate(rows) if j != i]
        r["chosen_rule"] = max(RULES, key=lambda k: np.mean([o[k] for o in others]))
        r["chosen"] = r[r["chosen_rule"]]
    keys = ("gendf", "lfm", *RULES, "chosen", "metadata")
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    best_alone = max(means["gendf"], means["lfm"])
    beats = [k for k in (*RULES, "chosen") if means[k] > best_alone]
    return {"rows": rows, "mean_of_families": means, "rules_beating_each_family_alone": beats}


def _machine() -> str:
    info = device_info()
    return f"{info.cpu_model} ({info.cpu_class}), {time.strftime('%Y-%m-%d')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--rescore", action="store_true", help="compare the held-out scores already in the JSON")
    args = ap.parse_args()
    started = time.time()
    previous = json.loads(OUT.read_text()) if args.rescore else {}
    folds = previous["folds"] if args.rescore else fold_scores(Path(args.data))
    seconds = previous.get("seconds") if args.rescore else round(time.time() - started, 1)
    result = {**compare(folds), "seconds": seconds, "measured_on": previous.get("measured_on") or _machine(),
              "command": f"python benchmarks/fusion_heldout.py --data {args.data}", "folds": folds}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["rows"]:
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    print("mean of families:", {k: round(v, 3) for k, v in result["mean_of_families"].items()})
    print("rules beating each family alone:", result["rules_beating_each_family_alone"] or "none")


if __name__ == "__main__":
    main()
