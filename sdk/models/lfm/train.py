"""LFM's training recipe: every weight from scratch on real, fake and self-blended faces; held-out
folds; the shipped tensors and their model card.

``deepfake-sdk train lfm-fp32 --data ../shared/data`` trains on every manifest of the folder
(the core set, the GAN/diffusion/editing fakes of ``manifest_extra.csv`` and the generated faces
of ``manifest_generated.csv``), each crop aligned and JPEG re-encoded as the zoo spec says, a
degraded copy of half of them and one self-blend per real face (the same item universe as
GenD's recipe, :mod:`deepfake_sdk.training.items`), generated fakes up-weighted, labels
balanced. The items are drawn once and shared by every fold.

Besides the weighted cross-entropy, a localization term supervises each position's share of the
fake-minus-real logit (the salience map users see): inside a self-blend's mask it should say
fake, on a real face nowhere. Without it the map lit up wherever the residual was loud (hair,
edges) and was lower inside the blend than outside; other fakes carry no mask and are left to
the classification loss.

Before the final model, a smaller run (fewer faces per source, fewer epochs: ten of them must
fit the hour on two cores) trains on each held-out fold, beside the metadata-only control (the
file's traits alone); the card records each fold's AUC, the threshold chosen on the held-out
real pool, the parameter count, and where and how long training ran.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...metrics import roc_auc
from ...training.baselines import LogisticProbe, metadata_features
from ...training.folds import Fold, make_folds
from ...training.records import (crops_summary, model_card, output_dir, provenance, threshold_entry, train_command,
                                 write_card)
from ...training.items import BLEND, Items, capped, items_for, load_crops, weighted_for
from ...training.runs import (TrainLog, log_step, per_source, pixels, resolve_device, summarize,
                              threshold_at_fpr)
from ...zoo import ModelSpec, get_spec
from .model import LFM, TOP_K


@dataclass(frozen=True)
class LFMConfig:
    epochs: int = 10
    fold_epochs: int = 3  # each held-out fold's model (the card's columns)
    folds: str = "all"  # "all": family and source folds; "family"; "none": the final model only
    batch_size: int = 32
    lr: float = 2e-3
    min_lr: float = 2e-5
    weight_decay: float = 1e-4
    k: int = TOP_K
    selection: str = "top-k"  # or "random-k" (training only)
    localization_weight: float = 0.5  # 0: classification loss only
    sbi_per_real: int = 1
    degrade: float = 0.5
    generated_weight: float = 2.0
    per_source_cap: int | None = 400
    fold_per_source_cap: int | None = 120
    device: str = "auto"
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def fresh_model(cfg: LFMConfig) -> LFM:
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return LFM(k=cfg.k, selection=cfg.selection)


def train_lfm(items: Items, idx: np.ndarray, cfg: LFMConfig, pp, epochs: int) -> tuple[LFM, TrainLog]:
    """A fresh LFM trained on the items ``idx`` (weighted cross-entropy, random flips, AdamW with a
    cosine schedule)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model = fresh_model(cfg).to(device).train()
    items = weighted_for(items, idx)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = max(1, epochs * math.ceil(len(idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1,
                                                final_div_factor=cfg.lr / cfg.min_lr)
    log, start = TrainLog(device=str(device)), time.time()
    for epoch in range(epochs):
        order = idx[rng.permutation(len(idx))]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            x = items.images[b]
            flip = rng.random(len(b)) < 0.5
            x[flip] = x[flip, :, ::-1]
            y = torch.from_numpy(items.labels[b]).to(device)
            w = torch.from_numpy(items.weights[b]).float().to(device)
            maps = model.maps(pixels(x, pp, device))
            loss = (F.cross_entropy(model.head(model.pool(maps)), y, reduction="none") * w).mean()
            if cfg.localization_weight > 0 and items.masks is not None:
                loss = loss + cfg.localization_weight * localization_loss(model, maps, items, b, flip)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            log_step(log, epoch, len(log.steps) + 1, total, {"loss": round(loss.item(), 4)}, start)
    log.seconds = time.time() - start
    return model.eval().cpu(), log


def localization_loss(model: LFM, maps: torch.Tensor, items: Items, b: np.ndarray, flip: np.ndarray) -> torch.Tensor:
    """Binary cross-entropy of each position's (dense) logit share against where the item is
    fake: the self-blend's mask pooled to the map's grid, zero everywhere on a real face; items
    without a known region (other fakes) are left out."""
    known = (items.kind[b] == BLEND) | (items.labels[b] == 0)
    if not known.any():
        return maps.sum() * 0.0
    masks = items.masks[b].copy()
    masks[flip] = masks[flip, :, ::-1]
    target = F.adaptive_avg_pool2d(torch.from_numpy(masks[known]).float()[:, None] / 255.0, maps.shape[-1])[:, 0]
    shares = model.position_shares(maps[torch.from_numpy(known).to(maps.device)]) * model.pool.k
    return F.binary_cross_entropy_with_logits(shares, target.to(maps.device))


@torch.no_grad()
def scores(model: LFM, images: np.ndarray, pp, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(pixels(images[i : i + batch], pp, torch.device("cpu"))), -1)[:, 1]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


@dataclass
class Run:
    """What the folds and the final model share: crops, the item universe, metadata features."""

    data_dir: Path
    spec: ModelSpec
    cfg: LFMConfig
    crops: object
    items: Items
    metadata: np.ndarray

    @classmethod
    def prepare(cls, data_dir: Path, spec: ModelSpec, cfg: LFMConfig) -> "Run":
        crops = load_crops(data_dir, spec.preprocessing)
        items = items_for(crops, np.arange(len(crops.samples)), cfg, np.random.default_rng(cfg.seed),
                          masks=cfg.localization_weight > 0)
        return cls(Path(data_dir), spec, cfg, crops, items, metadata_features(crops.samples, data_dir))

    def item_index(self, sample_idx: np.ndarray, cap: int | None) -> np.ndarray:
        """The training items (crops or their degraded copies, self-blends) of capped ``sample_idx``."""
        chosen = capped(self.crops.samples, sample_idx, cap)
        train = self.items.training()
        return train[np.isin(self.items.origin[train], chosen)]

    def evaluate(self, fold: Fold) -> dict:
        labels = self.crops.labels()
        y_train, y_test = labels[fold.train], labels[fold.test]
        if not (y_train == 0).any() or len(set(y_test)) < 2:
            return {**fold.describe(self.crops.samples), "skipped": "no real faces to train on, or one class to test",
                    "auc": float("nan"), "auc_metadata_control": float("nan")}
        model, log = train_lfm(self.items, self.item_index(fold.train, self.cfg.fold_per_source_cap), self.cfg,
                               self.spec.preprocessing, self.cfg.fold_epochs)
        ours = scores(model, self.crops.images[fold.test], self.spec.preprocessing)
        meta = LogisticProbe().fit(self.metadata[fold.train], y_train).predict(self.metadata[fold.test])
        return {**fold.describe(self.crops.samples), "auc": roc_auc(y_test, ours),
                "auc_metadata_control": roc_auc(y_test, meta), "train_seconds": round(log.seconds, 1),
                "test_sources": per_source(self.crops.samples, fold.test, ours)}


def train_recipe(data_dir: Path, out_dir: Path, cfg: LFMConfig, model_name: str = "lfm-fp32", command: str = "") -> dict:
    """Held-out folds (``cfg.folds``), then the final model on everything but the real pool, + card."""
    spec = get_spec(model_name)
    started = time.time()
    run = Run.prepare(data_dir, spec, cfg)
    folds, final = make_folds(run.crops.samples)
    chosen = [f for f in folds if cfg.folds == "all" or f.kind == cfg.folds]
    results = []
    for fold in chosen:
        print(f"[fold] {fold.name}: train {len(fold.train)}, test {len(fold.test)}", flush=True)
        results.append(run.evaluate(fold))
        print(f"[fold] {fold.name}: AUC {results[-1]['auc']:.3f}, metadata {results[-1]['auc_metadata_control']:.3f}",
              flush=True)
    print(f"[final] training on {len(final.train)} crops (real pool of {len(final.test)} held out)", flush=True)
    model, log = train_lfm(run.items, run.item_index(final.train, cfg.per_source_cap), cfg, spec.preprocessing,
                           cfg.epochs)
    pool = scores(model, run.crops.images[final.test], spec.preprocessing)
    card = _card(run, final, results, log, threshold_at_fpr(pool), pool, model, time.time() - started, command)
    write_card(Path(out_dir), spec, card, model.state_dict())
    return card


def _card(run: Run, final: Fold, results: list[dict], log: TrainLog, threshold: float, pool: np.ndarray, model: LFM,
          seconds: float, command: str) -> dict:
    spec, cfg = run.spec, run.cfg
    return model_card(
        spec,
        architecture=(f"LFM: NPR residual -> salience CNN {model.backbone.out_channels} maps at 1/8 -> 1x1 to "
                      f"{model.reduce.out_channels} -> Top-{cfg.k} pooling -> Linear; rank-based linear dropout "
                      "0.1 -> 0.3 in training"),
        backbone_weights={"source": "none: every weight trained from scratch"},
        parameters={"total": int(sum(p.numel() for p in model.parameters())),
                    "salience_net": int(sum(p.numel() for p in model.backbone.parameters())),
                    "reduction": int(sum(p.numel() for p in model.reduce.parameters())),
                    "head": int(sum(p.numel() for p in model.head.parameters()))},
        recipe="scratch",
        recipe_note=(f"final: {cfg.epochs} epochs, at most {cfg.per_source_cap} crops per source and label; folds: "
                     f"{cfg.fold_epochs} epochs, at most {cfg.fold_per_source_cap}; one self-blend per real and a "
                     "degraded copy of half the items, drawn once; localization loss (weight "
                     f"{cfg.localization_weight}) on the salience map: blend masks, zero on real faces"),
        data=crops_summary(run.data_dir, run.crops, spec, cfg),
        held_out={"real_pool_sources": list(final.held_out_sources), "real_pool_faces": int(len(final.test)),
                  "folds": results, "mean": summarize(results)},
        threshold=threshold_entry(threshold, pool),
        provenance=provenance(command, cfg.seed, cfg.to_dict(), log, seconds),
    )


def run(args) -> dict:
    """``deepfake-sdk train lfm-fp32``: the family's training command."""
    spec = get_spec(args.model)
    cfg = LFMConfig(seed=args.seed, device=args.device, folds="none" if args.no_eval else "all")
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    return train_recipe(Path(args.data), output_dir(args, spec), cfg, spec.name, command=train_command(args))
