"""The one model-card writer: what a training recipe writes, its tensors, then the card that
vouches for them.

Every family's recipe (GenD, its multi-block head, GenDF, LFM, the fused rule, the GenD-Lite
student) fills :func:`model_card` with what only it knows (architecture, recipe, data, held-out
results, family fields such as parameters or the fusion rule) and writes it with
:func:`write_card`, so every card has one layout and records its threshold, provenance and
tensors' checksum the same way.
"""
from __future__ import annotations

import datetime
import platform
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .. import jsonio
from ..artifact import atomic_path, sha256_file
from ..device import device_info
from ..zoo import ModelSpec
from .runs import THRESHOLD_FPR, TrainLog


def threshold_entry(threshold: float, pool_scores: np.ndarray, on: str | None = None) -> dict:
    """The card's decision threshold: chosen for a stated false-positive rate on the held-out
    real pool, and what 0.5 would have given there."""
    return {"value": round(threshold, 6), "chosen_at_fpr": THRESHOLD_FPR,
            "on": on or f"{len(pool_scores)} held-out real faces (the real pool; not trained on)",
            "pool_fpr_at_0.5": float(np.mean(pool_scores >= 0.5))}


def provenance(command: str, seed: int, config: dict, log: TrainLog, total_seconds: float, **timings) -> dict:
    """Where, when, how and with what a card's tensors were trained (``timings``: further
    ``*_seconds`` entries of ``trained_on``)."""
    return {
        "command": command,
        "seed": seed,
        "config": config,
        "trained_on": {"device": log.device, "machine": f"{platform.system()} {platform.machine()}",
                       "cpu": device_info().cpu_model, "final_train_seconds": round(log.seconds, 1),
                       **{k: (round(v, 1) if v is not None else None) for k, v in timings.items()},
                       "total_seconds": round(total_seconds, 1)},
        "final_loss": log.steps[-1] if log.steps else None,
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def model_card(spec: ModelSpec, *, architecture: str, recipe: str, recipe_note: str, data: dict, held_out: dict,
               threshold: dict, provenance: dict, **family_fields) -> dict:
    """A card in the one layout: the entry, what the model is (``architecture`` and the family's
    own ``family_fields``: backbone weights, parameters, teacher, fusion rule...), how and on what it
    was trained, how it did on held-out faces, its threshold, and its provenance
    (:func:`provenance`)."""
    return {"model": spec.base_name, "version": spec.version, "architecture": architecture, **family_fields,
            "recipe": recipe, "recipe_note": recipe_note, "data": data, "held_out": held_out,
            "threshold": threshold, **provenance}


def crops_per_family(samples) -> dict[str, dict[str, int]]:
    """``{family: {"crops": n}}`` of the training crops, the card's data summary."""
    out: dict[str, dict[str, int]] = {}
    for sample in samples:
        out.setdefault(sample.family, {"crops": 0})["crops"] += 1
    return out


def crops_summary(data_dir: Path, crops, spec: ModelSpec, cfg) -> dict:
    """The card's ``data`` section of a recipe trained on ``crops`` with one self-blend setting,
    a generated-fake weight and a per-source cap (``cfg``'s ``sbi_per_real``, ``generated_weight``,
    ``per_source_cap``)."""
    return {"folder": str(data_dir), "manifests": crops.manifest_sha256, "crops": len(crops.samples),
            "skipped_no_face": len(crops.skipped), "per_family": crops_per_family(crops.samples),
            "self_blends": f"{cfg.sbi_per_real} per real crop", "jpeg_quality": spec.preprocessing.jpeg_quality,
            "generated_fake_weight": cfg.generated_weight, "per_source_cap": cfg.per_source_cap}


def write_card(out_dir: Path, spec: ModelSpec, card: dict, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """The tensors (safetensors, when the entry trains any) and then their card, which records
    their count and SHA-256 (what loading checks), each written whole or not at all."""
    out_dir = Path(out_dir)
    if tensors is not None:
        weights = out_dir / spec.weights
        with atomic_path(weights) as tmp:
            save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
        card["trained_tensors"] = {"count": len(tensors), "parameters": int(sum(v.numel() for v in tensors.values())),
                                   "sha256": sha256_file(weights)}
    path = out_dir / spec.card_path.name
    with atomic_path(path) as tmp:
        tmp.write_text(jsonio.dumps(card, indent=2) + "\n")
    return path


def train_command(args) -> str:
    """The ``deepfake-sdk train`` line a card records, from the parsed arguments that ran it."""
    return (f"deepfake-sdk train {args.model} --data {args.data} --seed {args.seed}"
            + (f" --epochs {args.epochs}" if args.epochs is not None else "") + (" --no-eval" if args.no_eval else ""))


def output_dir(args, spec: ModelSpec) -> Path:
    """Where a training run writes: ``--out``, else the family's ``weights/``."""
    return Path(args.out) if args.out else spec.weights_path.parent
