"""``deepfake-sdk train fused-fp32``: choose the fusion rule on held-out folds, then its threshold.

Each fold trains GenDF's and LFM's fold models exactly as their own recipes do (same folds, same
items and configs; GenDF reads its cached CLIP tokens) and scores the same held-out faces with
both. On each fold the rules of ``rules.RULES`` combine the two held-out margins; beside them, a
logistic combiner fitted on the *other* family folds (leave one family out) and the metadata-only
control. The shipped rule is the one with the best mean AUC over the family folds (unseen
families, what the product is judged on); the card's own ``auc`` on a family fold is the rule the
*other* family folds would have chosen, so no fold scores a choice made on its own faces. The
members are not retrained: the entry combines the shipped members, whose tensors the card pins,
and the threshold is chosen on their fused scores over the held-out real pool.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...metrics import roc_auc
from ...preprocess import to_batch
from ...training.baselines import LogisticProbe
from ...training.records import model_card, provenance, threshold_entry, train_command, write_card
from ...training.runs import TrainLog, per_source, threshold_at_fpr
from ...zoo import ModelSpec, get_spec
from ..factory import create_model
from ..gendf import train as gendf_train
from ..lfm import train as lfm_train
from ..tensors import recorded_sha256
from .model import Fused
from .serving import adapters_for, part_names
from .rules import RULES, combine, margins_from_probs as margin

COMPARED = ("gendf", "lfm", *RULES, "learned")  # the card's AUC columns, besides the chosen rule


@dataclass(frozen=True)
class FusedConfig:
    seed: int = 0
    folds: str = "all"  # "all" | "family" | "source" | "none" (no AUCs: the rule defaults to max)

    def to_dict(self) -> dict:
        return asdict(self)


def fold_scores(g: gendf_train.Run, lrun: lfm_train.Run, fold, lfm_cfg) -> dict | None:
    """Both members' fold models on the fold's held-out faces (GenDF's capped test crops), and
    the metadata control; None when the fold has no real face to train on or one class to test."""
    labels = g.crops.labels()
    test, train = g.test_crops(fold), g.train_items(fold.train)
    if not (g.items.labels[train] == 0).any() or len(set(labels[test])) < 2:
        return None
    head, _ = gendf_train.train_head(g.cached, g.items, train, g.dim, g.cfg, g.cfg.fold_epochs, g.grid)
    model, _ = lfm_train.train_lfm(lrun.items, lrun.item_index(fold.train, lfm_cfg.fold_per_source_cap), lfm_cfg,
                                   lrun.spec.preprocessing, lfm_cfg.fold_epochs)
    meta = LogisticProbe().fit(g.metadata[fold.train], labels[fold.train]).predict(g.metadata[test])
    return {**fold.describe(g.crops.samples), "scored": int(len(test)), "index": test, "labels": labels[test],
            "gendf": margin(gendf_train.head_scores(head, g.cached, test)),
            "lfm": margin(lfm_train.scores(model, lrun.crops.images[test], lrun.spec.preprocessing)), "metadata": meta}


def compare_rules(scored: list[dict]) -> list[dict]:
    """Per fold: each member's and each rule's AUC, the learned combiner's (fitted on the other
    family folds) and the metadata control's."""
    family = [s for s in scored if s["kind"] == "family"]
    rows = []
    for s in scored:
        y, both = s["labels"], np.stack([s["gendf"], s["lfm"]])
        others = [o for o in family if o is not s]
        learned = LogisticProbe().fit(np.concatenate([np.stack([o["gendf"], o["lfm"]], 1) for o in others]),
                                      np.concatenate([o["labels"] for o in others])).predict(both.T) if others else None
        aucs = {"auc_gendf": roc_auc(y, s["gendf"]), "auc_lfm": roc_auc(y, s["lfm"]),
                **{f"auc_{rule}": roc_auc(y, combine(both, rule)) for rule in RULES},
                "auc_learned": roc_auc(y, learned) if learned is not None else float("nan"),  # no other family fold
                "auc_metadata_control": roc_auc(y, s["metadata"])}
        rows.append({k: v for k, v in s.items() if k not in ("index", "labels", *COMPARED, "metadata")} | aucs)
    return rows


def best_rule(rows: list[dict]) -> str:
    """The rule with the best mean AUC over these (family) folds."""
    return max(RULES, key=lambda rule: np.mean([r[f"auc_{rule}"] for r in rows]))


def with_chosen(rows: list[dict], shipped: str) -> list[dict]:
    """Each row's ``auc``: on a family fold, the rule the other family folds choose; on a source
    fold, the shipped rule (chosen on family folds only)."""
    family = [r for r in rows if r["kind"] == "family"]
    out = []
    for r in rows:
        rule = best_rule([o for o in family if o is not r]) if r["kind"] == "family" and len(family) > 1 else shipped
        out.append({**r, "rule": rule, "auc": r[f"auc_{rule}"]})
    return out


def mean_columns(rows: list[dict]) -> dict:
    """Mean of every AUC column over the family folds and over the source folds."""
    out = {}
    for kind in ("family", "source"):
        picked = [r for r in rows if r["kind"] == kind and not np.isnan(r["auc"])]
        if picked:
            out[kind] = {k: round(float(np.mean([r[k] for r in picked])), 4) for k in picked[0] if k.startswith("auc")}
    return out


def pool_scores(spec: ModelSpec, rule: str, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """The shipped members' fused P(fake) on ``crops`` (the held-out real pool)."""
    model = Fused([create_model(get_spec(m)) for m in part_names(spec)], adapters_for(spec), rule).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(torch.softmax(model(torch.from_numpy(to_batch(crops[i:i + batch], spec.preprocessing))), 1)[:, 1])
    return torch.cat(out).numpy()


def train_recipe(data_dir: Path, out_dir: Path, cfg: FusedConfig, model_name: str = "fused-fp32",
                 command: str = "") -> dict:
    spec = get_spec(model_name)
    if part_names(spec) != ("gendf-fp32", "lfm-fp32"):
        raise ValueError(f"this recipe trains GenDF and LFM fold models; {spec.name} fuses {part_names(spec)}")
    started = time.time()
    lfm_cfg = lfm_train.LFMConfig(seed=cfg.seed)
    g = gendf_train.Run.prepare(data_dir, get_spec(part_names(spec)[0]), gendf_train.GenDFConfig(seed=cfg.seed))
    lrun = lfm_train.Run.prepare(data_dir, get_spec(part_names(spec)[1]), lfm_cfg)
    if [s.path for s in g.crops.samples] != [s.path for s in lrun.crops.samples]:
        raise ValueError("GenDF and LFM read different crops: they must share the crop cache to be fused")
    scored = []
    for fold in (f for f in g.folds if cfg.folds == "all" or f.kind == cfg.folds):
        t0 = time.time()
        result = fold_scores(g, lrun, fold, lfm_cfg)
        if result is not None:
            scored.append(result)
            print(f"[fold] {fold.name}: {result['scored']} faces, {time.time() - t0:.0f} s", flush=True)
    rows = compare_rules(scored)
    family_rows = [r for r in rows if r["kind"] == "family"]
    shipped = best_rule(family_rows) if family_rows else RULES[0]
    rows = with_chosen(rows, shipped)
    for r, s in zip(rows, scored):
        r["test_sources"] = per_source(g.crops.samples, s["index"], combine(np.stack([s["gendf"], s["lfm"]]), r["rule"]))
    pool = pool_scores(spec, shipped, g.crops.images[g.final.test])
    card = _card(spec, g, rows, shipped, threshold_at_fpr(pool), pool, cfg, time.time() - started, command)
    write_card(Path(out_dir), spec, card)
    return card


def _card(spec: ModelSpec, g, rows: list[dict], rule: str, threshold: float, pool: np.ndarray, cfg: FusedConfig,
          seconds: float, command: str) -> dict:
    means = mean_columns(rows)
    family = means.get("family", {})
    beats = bool(family) and family["auc"] > max(family["auc_gendf"], family["auc_lfm"])
    members = [{"name": m, "version": get_spec(m).version, "sha256": recorded_sha256(get_spec(m).card_path)}
               for m in part_names(spec)]
    return model_card(
        spec,
        architecture=f"{' + '.join(part_names(spec))} on the same crop; fused margin = {rule} of their logit margins",
        members=members,
        parameters={"trained": 0, "note": "a parameter-free rule over the members' shipped tensors"},
        fusion={"rule": rule, "candidates": list(RULES),
                "chosen_on": "mean AUC over the family folds (unseen families)",
                "learned_combiner": "logistic on both margins, fitted on the other family folds: compared, not shipped",
                "beats_each_member_on_unseen_families": beats},
        recipe="held-out-rule",
        recipe_note=("members' fold models trained as their own recipes do; the rule with the best mean AUC over "
                     "the family folds is shipped; the threshold is chosen on the shipped members' fused scores"),
        data={"folder": str(g.data_dir), "manifests": g.crops.manifest_sha256, "crops": len(g.crops.samples)},
        held_out={"real_pool_sources": list(g.final.held_out_sources), "real_pool_faces": int(len(g.final.test)),
                  "folds": rows, "mean": means},
        threshold=threshold_entry(threshold, pool),
        provenance=provenance(command, cfg.seed, cfg.to_dict(), TrainLog(seconds=0.0), seconds),
    )


def run(args) -> dict:
    """``deepfake-sdk train fused-fp32``: the entry's training command (no tensors: a card)."""
    spec = get_spec(args.model)
    cfg = FusedConfig(seed=args.seed, folds="none" if args.no_eval else "all")
    out = Path(args.out) if args.out else spec.card_path.parent
    return train_recipe(Path(args.data), out, cfg, spec.name, command=train_command(args))
