"""GenDF's training recipe: the head alone, on the frozen backbone's final tokens (computed once
per item and cached), with its three losses; held-out folds; tensors and model card.

``deepfake-sdk train gendf-fp32 --data ../shared/data`` draws GenD's item universe
(:mod:`deepfake_sdk.training.items`: crops of every manifest, degraded copies, one self-blend per
real face, now with the blend masks), caps the faces per source, runs the backbone once per
needed item (:class:`~deepfake_sdk.training.tokens.TokenCache`: the only expensive part, shared
by every fold and kept on disk), then trains the ~0.12 M-parameter head per fold in seconds.

The loss, per batch: weighted cross-entropy on the classifier, the same on the feature
augmented orthogonally to the classifier's direction, the neighbour-pair contrastive loss of
the discontinuity map (pairs of real faces and pairs inside a self-blend's regions pulled to
continuity, pairs crossing a self-blend's mask boundary pushed past a margin), and the
redistribution loss (class means symmetric about the origin and at least ``separation`` apart).
"""
from __future__ import annotations

import hashlib
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
from ...training.records import model_card, output_dir, provenance, threshold_entry, train_command, write_card
from ...training.items import BLEND, Items, capped, items_for, load_crops, weighted_for
from ...training.runs import TrainLog, log_step, per_source, summarize, threshold_at_fpr
from ...training.tokens import TokenCache
from ...zoo import ModelSpec, get_spec
from ..backbones import backbone_provenance, create_backbone
from .model import GenDF, GenDFHead


@dataclass(frozen=True)
class GenDFConfig:
    epochs: int = 15
    fold_epochs: int = 8
    folds: str = "all"  # "all": family and source folds; "family"; "none"
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    w_augmented: float = 0.5  # cross-entropy on the classification-invariant augmented feature
    augment_sigma: float = 0.5
    w_discontinuity: float = 1.0
    margin: float = 0.5  # 1 - cos a boundary pair must reach
    boundary: float = 0.25  # patch-mask difference at which a neighbour pair crosses the blend boundary
    w_redistribution: float = 0.1
    separation: float = 1.0  # class-mean distance (per sqrt(dim)) the redistribution loss asks for
    sbi_per_real: int = 1
    degrade: float = 0.5
    generated_weight: float = 2.0
    per_source_cap: int | None = 200  # faces per source and label whose items train (and are cached)
    test_cap: int | None = 60  # faces per source and label a fold scores
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class Cached:
    """The needed items' final tokens, the backbone's final LayerNorm applied once (FP16), and
    where each item sits."""

    def __init__(self, cache: TokenCache, items: np.ndarray, norm: torch.nn.Module, chunk: int = 256):
        self.cache = cache
        self.row = np.full(int(items.max()) + 1, -1, dtype=np.int64)
        self.row[items] = np.arange(len(items))
        with torch.no_grad():
            self.normed = torch.cat([norm(cache.tokens[i : i + chunk].float()).half()
                                     for i in range(0, len(cache.tokens), chunk)])

    def __len__(self) -> int:
        return len(self.normed)

    def tokens(self, item_idx: np.ndarray) -> torch.Tensor:
        return self.normed[torch.from_numpy(self.row[np.asarray(item_idx)])].float()


def patch_masks(items: Items, item_idx: np.ndarray, grid: int) -> torch.Tensor:
    """Each item's blend mask averaged over the ViT's patches: ``(B, grid, grid)`` in [0, 1]."""
    masks = torch.from_numpy(items.masks[item_idx]).float() / 255.0
    return F.adaptive_avg_pool2d(masks[:, None], grid)[:, 0]


def discontinuity_loss(horizontal: torch.Tensor, vertical: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                       blend: torch.Tensor, cfg: GenDFConfig) -> torch.Tensor:
    """The contrastive loss over neighbour pairs: continuity (``d -> 0``) for every pair of a real
    face and for a self-blend's pairs that stay on one side of its mask; ``d >= margin`` for the
    pairs the mask boundary crosses. Dataset fakes carry no mask and add nothing here."""
    pulled, pushed = [], []
    for d, m in ((horizontal, (masks[:, :, 1:] - masks[:, :, :-1]).abs()),
                 (vertical, (masks[:, 1:] - masks[:, :-1]).abs())):
        crosses = (m > cfg.boundary) & blend.view(-1, 1, 1)
        known = ((labels == 0) | blend).view(-1, 1, 1).expand_as(d)
        pulled.append(d[known & ~crosses])
        pushed.append(d[crosses])
    pull, push = torch.cat(pulled), torch.cat(pushed)
    loss = pull.mean() if len(pull) else horizontal.sum() * 0
    return loss + (F.relu(cfg.margin - push).mean() if len(push) else 0.0)


def redistribution_loss(z: torch.Tensor, labels: torch.Tensor, cfg: GenDFConfig) -> torch.Tensor:
    """Real and fake means of the redistributed feature symmetric about the origin, and apart."""
    if not ((labels == 0).any() and (labels == 1).any()):
        return z.sum() * 0
    real, fake = z[labels == 0].mean(0), z[labels == 1].mean(0)
    gap = (fake - real).norm() / math.sqrt(z.shape[1])
    return ((real + fake) / 2).pow(2).mean() + F.relu(cfg.separation - gap) ** 2


def invariant_augment(z: torch.Tensor, direction: torch.Tensor, sigma: float) -> torch.Tensor:
    """``z`` plus Gaussian noise with its component along the classifier's direction removed:
    the logit is unchanged to first order; no parameters."""
    unit = F.normalize(direction.detach(), dim=0)
    noise = torch.randn_like(z) * sigma
    return z + noise - (noise @ unit)[:, None] * unit[None]


def train_head(cached: Cached, items: Items, idx: np.ndarray, dim: int, cfg: GenDFConfig, epochs: int,
               grid: int) -> tuple[GenDFHead, TrainLog]:
    """A fresh head trained on the cached items ``idx``."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    head = GenDFHead(dim).train()
    items = weighted_for(items, idx)  # labels balanced over the items that train
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = max(1, epochs * math.ceil(len(idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.min_lr)
    log, start = TrainLog(), time.time()
    for epoch in range(epochs):
        order = idx[rng.permutation(len(idx))]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            if len(b) < 2:  # BatchNorm's batch statistics need two items
                continue
            entry = _step(head, cached.tokens(b), items, b, torch.from_numpy(items.weights[b]).float(), cfg,
                          grid, opt, sched)
            log_step(log, epoch, len(log.steps) + 1, total, entry, start, every=200)
    log.seconds = time.time() - start
    return head.eval(), log


def _step(head: GenDFHead, tokens: torch.Tensor, items: Items, b: np.ndarray, w: torch.Tensor, cfg: GenDFConfig,
          grid: int, opt, sched) -> dict:
    y = torch.from_numpy(items.labels[b])
    blend = torch.from_numpy(items.kind[b] == BLEND)
    p = head.parts(tokens)
    ce = (F.cross_entropy(head.classify(p["z"], p["stats"]), y, reduction="none") * w).mean()
    z_aug = invariant_augment(p["z"], head.fake_direction(), cfg.augment_sigma)
    ce_aug = (F.cross_entropy(head.classify(z_aug, p["stats"]), y, reduction="none") * w).mean()
    disc = discontinuity_loss(p["horizontal"], p["vertical"], patch_masks(items, b, grid), y, blend, cfg)
    red = redistribution_loss(p["z"], y, cfg)
    loss = ce + cfg.w_augmented * ce_aug + cfg.w_discontinuity * disc + cfg.w_redistribution * red
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": round(loss.item(), 4), "ce": round(ce.item(), 4), "discontinuity": round(disc.item(), 4),
            "redistribution": round(red.item(), 4)}


@torch.no_grad()
def head_scores(head: GenDFHead, cached: Cached, item_idx: np.ndarray, batch: int = 128) -> np.ndarray:
    out = [torch.softmax(head(cached.tokens(item_idx[i : i + batch])), -1)[:, 1] for i in range(0, len(item_idx), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


@dataclass
class Run:
    data_dir: Path
    spec: ModelSpec
    cfg: GenDFConfig
    crops: object
    items: Items
    metadata: np.ndarray
    folds: list[Fold]
    final: Fold
    cached: Cached
    dim: int
    grid: int

    @classmethod
    def prepare(cls, data_dir: Path, spec: ModelSpec, cfg: GenDFConfig) -> "Run":
        crops = load_crops(data_dir, spec.preprocessing)
        n = len(crops.samples)
        items = items_for(crops, np.arange(n), cfg, np.random.default_rng(cfg.seed), masks=True)
        folds, final = make_folds(crops.samples)
        run = cls(Path(data_dir), spec, cfg, crops, items, metadata_features(crops.samples, data_dir), folds, final,
                  None, 0, 0)
        torch.set_num_threads(cfg.threads)
        backbone = create_backbone(spec.backbone).eval()
        needed = np.unique(np.concatenate([run.train_items(final.train), final.test,
                                           *(run.test_crops(f) for f in run.chosen_folds())]))
        digest = hashlib.sha256(np.ascontiguousarray(items.images[needed]).tobytes()).hexdigest()[:16]
        print(f"[gendf] {len(needed)} items through the frozen {spec.backbone}", flush=True)
        cache = TokenCache(backbone, items.images[needed], len(backbone.encoder.layer), spec.preprocessing,
                           key=f"{spec.backbone}-{digest}")
        run.cached = Cached(cache, needed, backbone.layernorm)
        run.dim, run.grid = backbone.feature_dim, spec.preprocessing.size // backbone.config.patch_size
        return run

    def chosen_folds(self) -> list[Fold]:
        return [f for f in self.folds if self.cfg.folds == "all" or f.kind == self.cfg.folds]

    def train_items(self, sample_idx: np.ndarray) -> np.ndarray:
        """Training items (crops or their degraded copies, self-blends) of the capped faces of the
        final training set that lie in ``sample_idx``: every fold trains on a subset of what is cached."""
        chosen = np.intersect1d(capped(self.crops.samples, self.final.train, self.cfg.per_source_cap), sample_idx)
        train = self.items.training()
        return train[np.isin(self.items.origin[train], chosen)]

    def test_crops(self, fold: Fold) -> np.ndarray:
        """The clean crops a fold scores (item ``i`` is crop ``i``), capped per source and label."""
        return capped(self.crops.samples, fold.test, self.cfg.test_cap)

    def evaluate(self, fold: Fold) -> dict:
        labels = self.crops.labels()
        test = self.test_crops(fold)
        train = self.train_items(fold.train)
        y_test = labels[test]
        if not (self.items.labels[train] == 0).any() or len(set(y_test)) < 2:
            return {**fold.describe(self.crops.samples), "skipped": "no real faces to train on, or one class to test",
                    "auc": float("nan"), "auc_frozen_probe": float("nan"), "auc_metadata_control": float("nan")}
        head, log = train_head(self.cached, self.items, train, self.dim, self.cfg, self.cfg.fold_epochs, self.grid)
        ours = head_scores(head, self.cached, test)
        cls_train = F.normalize(self.cached.tokens(train)[:, 0], dim=-1).numpy()
        probe = LogisticProbe(l2=1e-2).fit(cls_train, self.items.labels[train])
        frozen = probe.predict(F.normalize(self.cached.tokens(test)[:, 0], dim=-1).numpy())
        meta = LogisticProbe().fit(self.metadata[fold.train], labels[fold.train]).predict(self.metadata[test])
        return {**fold.describe(self.crops.samples), "scored": int(len(test)), "auc": roc_auc(y_test, ours),
                "auc_frozen_probe": roc_auc(y_test, frozen), "auc_metadata_control": roc_auc(y_test, meta),
                "train_seconds": round(log.seconds, 1), "test_sources": per_source(self.crops.samples, test, ours)}


def train_recipe(data_dir: Path, out_dir: Path, cfg: GenDFConfig, model_name: str = "gendf-fp32",
                 command: str = "") -> dict:
    spec = get_spec(model_name)
    started = time.time()
    run = Run.prepare(data_dir, spec, cfg)
    results = []
    for fold in run.chosen_folds():
        results.append(run.evaluate(fold))
        r = results[-1]
        print(f"[fold] {fold.name}: AUC {r['auc']:.3f}, frozen probe {r['auc_frozen_probe']:.3f}, "
              f"metadata {r['auc_metadata_control']:.3f}", flush=True)
    train = run.train_items(run.final.train)
    print(f"[final] head on {len(train)} items (real pool of {len(run.final.test)} held out)", flush=True)
    head, log = train_head(run.cached, run.items, train, run.dim, cfg, cfg.epochs, run.grid)
    model = GenDF(create_backbone(spec.backbone)).eval()
    model.head.load_state_dict(head.state_dict())
    pool = head_scores(head, run.cached, run.final.test)
    card = _card(run, results, log, threshold_at_fpr(pool), pool, model, time.time() - started, command)
    write_card(Path(out_dir), spec, card, model.trained_state_dict())
    return card


def _card(run: Run, results: list[dict], log: TrainLog, threshold: float, pool: np.ndarray, model: GenDF,
          seconds: float, command: str) -> dict:
    spec, cfg = run.spec, run.cfg
    head = model.head
    return model_card(
        spec,
        architecture=(f"GenDF on {spec.backbone} (frozen): patch tokens -> {head.mine.out_features}-d neighbour "
                      f"discontinuity map (mean, top-8 mean) + CLS redistributed to {head.redistribute.out_features}-d "
                      "(centred) -> Linear; classification-invariant feature augmentation in training"),
        backbone_weights=backbone_provenance(spec.backbone),
        parameters={"head_trainable": model.head_parameters(),
                    "mine": sum(p.numel() for p in head.mine.parameters()),
                    "redistribute": sum(p.numel() for p in head.redistribute.parameters()),
                    "classifier": sum(p.numel() for p in head.classifier.parameters()),
                    "backbone_frozen": sum(p.numel() for p in model.backbone.parameters()),
                    "limit": 300_000},
        recipe="frozen-tokens",
        recipe_note=(f"the backbone runs once per item (tokens cached FP16, {run.cached.cache.seconds:.0f} s); "
                     f"head: {cfg.epochs} epochs final, {cfg.fold_epochs} per fold; at most {cfg.per_source_cap} "
                     f"faces per source and label train, {cfg.test_cap} per source and label are scored per fold"),
        data={"folder": str(run.data_dir), "manifests": run.crops.manifest_sha256, "crops": len(run.crops.samples),
              "cached_items": len(run.cached), "self_blends": f"{cfg.sbi_per_real} per real crop",
              "jpeg_quality": spec.preprocessing.jpeg_quality, "generated_fake_weight": cfg.generated_weight},
        held_out={"real_pool_sources": list(run.final.held_out_sources), "real_pool_faces": int(len(run.final.test)),
                  "folds": results, "mean": summarize(results)},
        threshold=threshold_entry(threshold, pool),
        provenance=provenance(command, cfg.seed, cfg.to_dict(), log, seconds,
                              token_cache_seconds=run.cached.cache.seconds),
    )


def run(args) -> dict:
    """``deepfake-sdk train gendf-fp32``: the family's training command."""
    spec = get_spec(args.model)
    cfg = GenDFConfig(seed=args.seed, folds="none" if args.no_eval else "all")
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    return train_recipe(Path(args.data), output_dir(args, spec), cfg, spec.name, command=train_command(args))
