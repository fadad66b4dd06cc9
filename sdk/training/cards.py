"""Model cards side by side: another model's held-out AUCs put beside a card's own, fold by fold.

Folds are named and defined by the data alone (:mod:`deepfake_sdk.training.folds`), so two cards
trained on the same data folder hold the same folds and their columns compare directly. Used by
``train --compare`` and ``card --attach`` (a comparison trained after the card was written).
"""
from __future__ import annotations

import math


def comparison_column(model: str) -> str:
    """The card column holding ``model``'s fold AUCs (``gend-dinov2-s14`` -> ``auc_gend_dinov2_s14``)."""
    return f"auc_{model.replace('-', '_')}"


def attach_comparison(card: dict, other: dict) -> dict:
    """Put another model's AUC on the same folds beside this card's (``auc_<model>``): the folds
    are named and defined by the data alone, so both cards' fold sets are the same when both were
    trained on the same manifests (checked: otherwise a ``ValueError``). Attaching a model again
    replaces its column."""
    mine, theirs_data = (c.get("data", {}).get("manifests") for c in (card, other))
    if mine != theirs_data:
        raise ValueError(f"cards trained on different data ({mine} vs {theirs_data}): their folds differ")
    key = comparison_column(other["model"])
    theirs = {f["name"]: f["auc"] for f in other["held_out"]["folds"]}
    for fold in card["held_out"]["folds"]:
        fold[key] = theirs.get(fold["name"], float("nan"))
    for kind, mean in card["held_out"]["mean"].items():
        rows = [f[key] for f in card["held_out"]["folds"] if f["kind"] == kind and not math.isnan(f.get("auc", math.nan))]
        finite = [v for v in rows if not math.isnan(v)]
        mean[key] = (round(sum(finite) / len(finite), 4) if finite else math.nan) if rows else None
    compared = [c for c in card["held_out"].get("compared_with", []) if c["model"] != other["model"]]
    card["held_out"]["compared_with"] = compared + [
        {"model": other["model"], "recipe": other.get("recipe"), "command": other.get("command")}]
    return card
