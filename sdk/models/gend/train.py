"""GenD's training recipe: LayerNorms + head on real, fake and self-blended faces; held-out folds;
the shipped tensors and their model card.

``deepfake-sdk train gend-clip-b16-fp32 --data ../shared/data`` trains on every manifest of the
folder (``manifest.csv``, ``manifest_extra.csv``, ``manifest_generated.csv``), each crop aligned
and JPEG re-encoded the same way, with one fresh self-blend per real, labels balanced and
generated (GAN, diffusion) fakes up-weighted. Two ways to run it:

* **full** (the paper's recipe; what a GPU runs, ``--device cuda``, bf16 autocast): every
  LayerNorm of the ViT and the head tune, images pass the whole network each step;
* **budget** (``--budget-blocks N``; the CPU default): only the last N blocks' LayerNorms, the
  final LayerNorm and the head tune. The frozen blocks before them run once per crop (FP32),
  their tokens are cached (FP16), and training runs N blocks per step: hours of CPU become
  minutes. The self-blends are drawn once, not per epoch.

Before the final model, the same recipe runs on every held-out fold
(:mod:`deepfake_sdk.training.folds`), beside the metadata-only control and a logistic probe on
the frozen backbone; the card records each fold's AUC, the threshold chosen on the held-out real
pool, and where and how long training ran.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...metrics import roc_auc
from ...training.cards import attach_comparison
from ...training.baselines import LogisticProbe, metadata_features
from ...training.data import CropSet
from ...training.folds import Fold, make_folds
from ...training.records import crops_summary, model_card, provenance, threshold_entry, write_card
from ...training.items import Items, capped, items_for, load_crops, weighted_for
from ...training.losses import alignment_loss, uniformity_loss
from ...training.tokens import TokenCache
from ...training.runs import (TrainLog, autocast, log_step, per_source, pixels, resolve_device,
                              summarize, threshold_at_fpr)
from ...zoo import ModelSpec, Preprocessing, get_spec
from ..backbones import backbone_provenance, create_backbone
from .model import GenD


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-4  # LayerNorms
    head_lr: float = 1e-3
    # Linear probe first, then tune (LP-FT, Kumar et al. 2022): on unit-norm features the classes
    # differ by small angles, so a randomly initialised head needs thousands of steps to reach
    # confident logits, and meanwhile its noisy gradients distort the backbone's features.
    probe_steps: int = 300
    probe_weight_decay: float = 1e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    w_uniformity: float = 0.5
    w_alignment: float = 0.1
    sbi_per_real: int = 1
    generated_weight: float = 2.0  # GAN/diffusion fakes weigh this much (scarce; full balancing hurt)
    per_source_cap: int | None = 400  # at most this many crops of one source and label train
    degrade: float = 0.5  # share of crops and self-blends that train as a degraded copy
    budget_blocks: int | None = None  # None: full recipe; N: tune the last N blocks on cached tokens
    device: str = "auto"  # "auto": cuda when there is one, else cpu
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)





# --------------------------------------------------------------------------------- trainers


def fit_head(model: GenD, feats: torch.Tensor, labels: np.ndarray, weights: np.ndarray, cfg: TrainConfig) -> float:
    """The head by weighted logistic regression on frozen unit-norm features (LP of LP-FT)."""
    y = torch.from_numpy(labels)
    w = torch.from_numpy(weights).float()
    linear = model.head.linear
    opt = torch.optim.Adam(linear.parameters(), lr=0.05, weight_decay=cfg.probe_weight_decay)
    for _ in range(cfg.probe_steps):
        loss = (torch.nn.functional.cross_entropy(linear(feats), y, reduction="none") * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (linear(feats).argmax(1) == y).float().mean().item()


def _optimiser(model: GenD, cfg: TrainConfig, n_items: int):
    norms = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups = [{"params": norms, "lr": cfg.lr}, {"params": list(model.head.parameters()), "lr": cfg.head_lr}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    total = max(1, cfg.epochs * math.ceil(n_items / cfg.batch_size))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.min_lr), total


def _step(model: GenD, feats: torch.Tensor, items: Items, batch: np.ndarray, cfg: TrainConfig, opt, sched) -> dict:
    """One step of GenD's objective on the items ``batch``, its cross-entropy weighted per item."""
    y = torch.from_numpy(items.labels[batch]).to(feats.device)
    w = torch.from_numpy(items.weights[batch]).float().to(feats.device)
    logits = model.head(feats.float())
    unit = torch.nn.functional.normalize(feats.float(), dim=-1)
    ce = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).mean()
    uni, ali = uniformity_loss(unit), alignment_loss(unit, y)
    loss = ce + cfg.w_uniformity * uni + cfg.w_alignment * ali
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": round(loss.item(), 4), "ce": round(ce.item(), 4), "uniformity": round(uni.item(), 4),
            "alignment": round(ali.item(), 4)}


def train_full(model: GenD, crops: CropSet, idx: np.ndarray, cfg: TrainConfig, pp: Preprocessing) -> TrainLog:
    """Every LayerNorm and the head; images through the whole ViT; fresh self-blends each epoch."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model.to(device).freeze_all_but_layernorms()
    items = items_for(crops, idx, cfg, rng)
    train = items.training()
    items = weighted_for(items, train)
    with torch.no_grad(), autocast(device):
        feats = torch.cat([model.features(pixels(items.images[train[i : i + 64]], pp, device)).float().cpu()
                           for i in range(0, len(train), 64)])
    model.head.cpu()
    fit_head(model, feats, items.labels[train], items.weights[train], cfg)
    model.to(device)
    opt, sched, total = _optimiser(model, cfg, len(train))
    log, start = TrainLog(device=str(device)), time.time()
    model.train()
    for epoch in range(cfg.epochs):
        if epoch:  # fresh self-blends and degraded copies each epoch
            items = items_for(crops, idx, cfg, rng)
            train = items.training()
            items = weighted_for(items, train)
        order = train[rng.permutation(len(train))]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            x = items.images[b]
            flip = rng.random(len(b)) < 0.5
            x[flip] = x[flip, :, ::-1]
            with autocast(device):
                feats = model.backbone(pixels(x, pp, device))
            entry = _step(model, feats, items, b, cfg, opt, sched)
            log_step(log, epoch, len(log.steps) + 1, total, entry, start)
    model.eval().cpu()
    log.seconds = time.time() - start
    return log




def budget_features(model: GenD, cache: TokenCache, idx: np.ndarray, train: bool = False,
                    device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """CLS features of cached items ``idx`` through the tuned blocks (FP32 when scoring)."""
    x = cache.tokens[torch.as_tensor(idx)].to(device)
    if train:
        with autocast(device):
            return model.backbone.forward_from(x.float(), cache.start)
    return model.backbone.forward_from(x.float(), cache.start)


def train_budget(model: GenD, cache: TokenCache, items: Items, idx: np.ndarray, cfg: TrainConfig) -> TrainLog:
    """The last ``n - cache.start`` blocks' LayerNorms, the final LayerNorm and the head, on
    cached tokens of the items ``idx``."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model.to(device).freeze_all_but_layernorms(from_block=cache.start)
    with torch.no_grad():
        feats = torch.cat([torch.nn.functional.normalize(budget_features(model, cache, idx[i : i + 64], device=device), dim=-1)
                           for i in range(0, len(idx), 64)]).cpu()
    items = weighted_for(items, idx)
    fit_head(model, feats, items.labels[idx], items.weights[idx], cfg)
    model.to(device)
    opt, sched, total = _optimiser(model, cfg, len(idx))
    log, start = TrainLog(device=str(device)), time.time()
    model.train()
    for epoch in range(cfg.epochs):
        order = idx[rng.permutation(len(idx))]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            feats = budget_features(model, cache, b, train=True, device=device)
            entry = _step(model, feats, items, b, cfg, opt, sched)
            log_step(log, epoch, len(log.steps) + 1, total, entry, start)
    model.eval().cpu()
    log.seconds = time.time() - start
    return log


@torch.no_grad()
def budget_scores(model: GenD, cache: TokenCache, idx: np.ndarray) -> np.ndarray:
    out = [torch.softmax(model.head(budget_features(model, cache, idx[i : i + 64])), -1)[:, 1]
           for i in range(0, len(idx), 64)]
    return torch.cat(out).numpy() if out else np.zeros(0)


@torch.no_grad()
def full_scores(model: GenD, images: np.ndarray, pp: Preprocessing, batch: int = 32) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(pixels(images[i : i + batch], pp, torch.device("cpu"))), -1)[:, 1]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


# ------------------------------------------------------------------------------ the recipe


def untrained(spec: ModelSpec) -> GenD:
    """Pretrained backbone, fresh head: the starting point of every run."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GenD(create_backbone(spec.backbone))


@dataclass
class Experiment:
    """Everything the folds share: crops, the item universe (crops + one self-blend per real),
    the token cache of the budget recipe, the metadata features."""

    data_dir: Path
    spec: ModelSpec
    cfg: TrainConfig
    crops: CropSet
    items: Items
    cache: TokenCache | None
    metadata: np.ndarray
    _frozen: np.ndarray | None = None  # unit CLS features of the untouched backbone, every crop

    @classmethod
    def prepare(cls, data_dir: Path, spec: ModelSpec, cfg: TrainConfig) -> "Experiment":
        crops = load_crops(data_dir, spec.preprocessing)
        items = items_for(crops, np.arange(len(crops.samples)), cfg, np.random.default_rng(cfg.seed))
        cache = None
        if cfg.budget_blocks is not None:
            torch.set_num_threads(cfg.threads)
            backbone = untrained(spec).backbone.eval()
            start = len(backbone.encoder.layer) - cfg.budget_blocks
            digest = hashlib.sha256(np.ascontiguousarray(items.images).tobytes()).hexdigest()[:16]
            cache = TokenCache(backbone, items.images, start, spec.preprocessing, key=f"{spec.backbone}-{digest}")
        return cls(Path(data_dir), spec, cfg, crops, items, cache, metadata_features(crops.samples, data_dir))

    def item_index(self, sample_idx: np.ndarray) -> np.ndarray:
        """The training items (crops or their degraded copies, and self-blends) of ``sample_idx``."""
        train = self.items.training()
        return train[np.isin(self.items.origin[train], sample_idx)]

    def crop_items(self, sample_idx: np.ndarray) -> np.ndarray:
        """The items that are the crops ``sample_idx`` themselves (no self-blends), same order."""
        first = {int(o): k for k, o in enumerate(self.items.origin[: len(self.crops.samples)])}
        return np.array([first[int(i)] for i in sample_idx], dtype=int)

    def train(self, sample_idx: np.ndarray) -> tuple[GenD, TrainLog]:
        model = untrained(self.spec)
        chosen = capped(self.crops.samples, sample_idx, self.cfg.per_source_cap)
        if self.cache is None:
            return model, train_full(model, self.crops, chosen, self.cfg, self.spec.preprocessing)
        return model, train_budget(model, self.cache, self.items, self.item_index(chosen), self.cfg)

    def scores(self, model: GenD, sample_idx: np.ndarray) -> np.ndarray:
        if self.cache is None:
            return full_scores(model, self.crops.images[sample_idx], self.spec.preprocessing)
        return budget_scores(model, self.cache, self.crop_items(sample_idx))

    def frozen_features(self, sample_idx: np.ndarray) -> np.ndarray:
        """Unit CLS features of the untouched pretrained backbone (the frozen probe's input),
        computed once for every crop."""
        if self._frozen is None:
            model, every = untrained(self.spec), np.arange(len(self.crops.samples))
            with torch.no_grad():
                if self.cache is None:
                    feats = [model.features(pixels(self.crops.images[i : i + 32], self.spec.preprocessing,
                                                    torch.device("cpu"))).numpy() for i in range(0, len(every), 32)]
                else:
                    items = self.crop_items(every)
                    feats = [torch.nn.functional.normalize(budget_features(model, self.cache, items[i : i + 64]),
                                                           dim=-1).numpy() for i in range(0, len(items), 64)]
            self._frozen = np.concatenate(feats)
        return self._frozen[sample_idx]


def evaluate_fold(exp: Experiment, fold: Fold) -> dict:
    """AUC on the fold's held-out test set of: this recipe, the frozen probe, the metadata control."""
    labels = exp.crops.labels()
    y_train, y_test = labels[fold.train], labels[fold.test]
    if not (y_train == 0).any() or len(set(y_test)) < 2:
        return {**fold.describe(exp.crops.samples), "skipped": "no real faces to train on, or one class to test",
                "auc": float("nan"), "auc_frozen_probe": float("nan"), "auc_metadata_control": float("nan")}
    model, log = exp.train(fold.train)
    ours = exp.scores(model, fold.test)
    meta = LogisticProbe().fit(exp.metadata[fold.train], y_train).predict(exp.metadata[fold.test])
    frozen_train = exp.frozen_features(capped(exp.crops.samples, fold.train, exp.cfg.per_source_cap))
    probe = LogisticProbe(l2=1e-2).fit(frozen_train, labels[capped(exp.crops.samples, fold.train, exp.cfg.per_source_cap)])
    frozen = probe.predict(exp.frozen_features(fold.test))
    return {**fold.describe(exp.crops.samples), "auc": roc_auc(y_test, ours), "auc_frozen_probe": roc_auc(y_test, frozen),
            "auc_metadata_control": roc_auc(y_test, meta), "train_seconds": round(log.seconds, 1),
            "test_sources": per_source(exp.crops.samples, fold.test, ours)}






def train_recipe(data_dir: Path, out_dir: Path, cfg: TrainConfig, model_name: str, evaluate: bool = True,
                 command: str = "", compare: list[dict] = ()) -> dict:
    """Folds (when ``evaluate``), then the final tensors on everything but the real pool, + card."""
    spec = get_spec(model_name)
    started = time.time()
    exp = Experiment.prepare(data_dir, spec, cfg)
    folds, final = make_folds(exp.crops.samples)
    results = []
    if evaluate:
        for fold in folds:
            print(f"[fold] {fold.name}: train {len(fold.train)}, test {len(fold.test)}", flush=True)
            results.append(evaluate_fold(exp, fold))
            print(f"[fold] {results[-1]}", flush=True)
    print(f"[final] training on {len(final.train)} crops (real pool of {len(final.test)} held out)", flush=True)
    model, log = exp.train(final.train)
    pool_scores = full_scores(model, exp.crops.images[final.test], spec.preprocessing)  # the shipped FP32 model
    threshold = threshold_at_fpr(pool_scores)
    agreement = None
    if exp.cache is not None:  # fold scores came through the cached prefix: how close is that to FP32?
        cached = exp.scores(model, final.test)
        agreement = {"pearson": float(np.corrcoef(cached, pool_scores)[0, 1]),
                     "max_abs_diff": float(np.abs(cached - pool_scores).max()), "faces": int(len(cached))}
    card = _card(exp, folds, final, results, log, threshold, pool_scores, time.time() - started, command)
    card["held_out"]["cached_vs_fp32_scores"] = agreement
    for other in compare:
        attach_comparison(card, other)
    write_card(Path(out_dir), spec, card, model.trained_state_dict())
    return card




def _card(exp: Experiment, folds: list[Fold], final: Fold, results: list[dict], log: TrainLog, threshold: float,
          pool_scores: np.ndarray, seconds: float, command: str) -> dict:
    spec, cfg = exp.spec, exp.cfg
    return model_card(
        spec,
        architecture=f"GenD on {spec.backbone}: LayerNorms tuned, L2-normalised CLS, Linear(D, 2)",
        backbone_weights=backbone_provenance(spec.backbone),
        recipe="budget" if cfg.budget_blocks is not None else "full",
        recipe_note=(f"budget: LayerNorms of the last {cfg.budget_blocks} blocks + final LayerNorm + head; the "
                     "frozen blocks' tokens cached once in FP32 (stored FP16), one self-blend per real drawn once"
                     if cfg.budget_blocks is not None else "full: every LayerNorm + head, fresh self-blends per epoch"),
        data=crops_summary(exp.data_dir, exp.crops, spec, cfg),
        held_out={"real_pool_sources": list(final.held_out_sources), "real_pool_faces": int(len(final.test)),
                  "folds": results, "mean": summarize(results)},
        threshold=threshold_entry(threshold, pool_scores),
        provenance=provenance(command, cfg.seed, cfg.to_dict(), log, seconds,
                              token_cache_seconds=exp.cache.seconds if exp.cache else None),
    )


def run(args) -> dict:
    """``deepfake-sdk train gend-...-fp32``: the family's training command."""
    spec = get_spec(args.model)
    if dict(spec.arch).get("readout", "cls") != "cls":  # a frozen multi-block head: fitted on cached features
        from .train_blocks import run as run_blocks
        return run_blocks(args)
    epochs = 3 if args.epochs is None else args.epochs
    cfg = TrainConfig(epochs=epochs, seed=args.seed, device=args.device, budget_blocks=args.budget_blocks)
    out = Path(args.out) if args.out else spec.weights_path.parent
    command = (f"deepfake-sdk train {spec.name} --data {args.data} --epochs {epochs} --seed {args.seed}"
               + (f" --budget-blocks {args.budget_blocks}" if args.budget_blocks is not None else "")
               + (" --no-eval" if args.no_eval else "") + "".join(f" --compare {c}" for c in args.compare or ()))
    others = [json.loads(Path(c).read_text()) for c in args.compare or ()]
    return train_recipe(Path(args.data), out, cfg, spec.name, evaluate=not args.no_eval, command=command, compare=others)
