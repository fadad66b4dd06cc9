"""Train GenD's LayerNorms and head on aligned crops + self-blended pseudo-fakes.

Usage is through ``deepfake-sdk train gend --data ../shared/data``; this module holds the loop.
Batches are balanced by construction: every real crop appears once as itself and once as a
fresh self-blended fake each epoch, next to the dataset's own fakes.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..metrics import roc_auc
from ..imageio import jpeg_roundtrip
from ..models.gend import GenD
from ..preprocess import to_batch
from ..zoo import Preprocessing
from .data import JPEG_QUALITY, CropSet
from .losses import gend_loss
from .sbi import self_blend

from PIL import Image


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 16
    lr: float = 3e-4
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
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainLog:
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def to_tensor(images: np.ndarray, pp: Preprocessing) -> torch.Tensor:
    return torch.from_numpy(to_batch(images, pp))


def _epoch_items(crops: CropSet, cfg: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [crops.images], [crops.labels()]
    reals = crops.images[crops.labels() == 0]
    for _ in range(cfg.sbi_per_real):
        fakes = [np.asarray(jpeg_roundtrip(Image.fromarray(self_blend(r, rng)), JPEG_QUALITY)) for r in reals]
        images.append(np.stack(fakes))
        labels.append(np.ones(len(fakes), dtype=np.int64))
    x, y = np.concatenate(images), np.concatenate(labels)
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, ::-1]
    order = rng.permutation(len(x))
    return x[order], y[order]


def train_gend(model: GenD, crops: CropSet, cfg: TrainConfig, pp: Preprocessing, log_every: int = 10) -> TrainLog:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    model.freeze_all_but_layernorms()
    if cfg.probe_steps:
        fit_linear_probe(model, *_epoch_items(crops, cfg, rng), cfg, pp)
    norms = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups = [{"params": norms, "lr": cfg.lr}, {"params": list(model.head.parameters()), "lr": cfg.head_lr}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    n_items = len(crops.images) + cfg.sbi_per_real * int((crops.labels() == 0).sum())
    total_steps = cfg.epochs * math.ceil(n_items / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=cfg.min_lr)
    log, start, step = TrainLog(), time.time(), 0
    model.train()
    for epoch in range(cfg.epochs):
        x_all, y_all = _epoch_items(crops, cfg, rng)
        for i in range(0, len(x_all), cfg.batch_size):
            x = to_tensor(x_all[i : i + cfg.batch_size], pp)
            y = torch.from_numpy(y_all[i : i + cfg.batch_size])
            feats = model.backbone(x)
            loss, parts = gend_loss(
                model.head(feats), torch.nn.functional.normalize(feats, dim=-1), y,
                cfg.w_uniformity, cfg.w_alignment,
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % log_every == 0 or step == total_steps:
                entry = {"epoch": epoch, "step": step, "loss": round(loss.item(), 4),
                         **{k: round(v, 4) for k, v in parts.items()},
                         "elapsed_s": round(time.time() - start, 1)}
                log.steps.append(entry)
                print(entry, flush=True)
    model.eval()
    log.seconds = time.time() - start
    return log


def fit_linear_probe(model: GenD, images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, pp: Preprocessing) -> float:
    """Fit the head by logistic regression on frozen unit-norm features; returns train accuracy."""
    with torch.no_grad():
        model.eval()
        feats = torch.cat([model.features(to_tensor(images[i : i + 32], pp))
                           for i in range(0, len(images), 32)])
    y = torch.from_numpy(labels)
    linear = model.head.linear
    opt = torch.optim.Adam(linear.parameters(), lr=0.05, weight_decay=cfg.probe_weight_decay)
    for _ in range(cfg.probe_steps):
        loss = torch.nn.functional.cross_entropy(linear(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (linear(feats).argmax(1) == y).float().mean().item()
    print({"probe_loss": round(loss.item(), 4), "probe_train_acc": round(acc, 4)}, flush=True)
    model.train()
    return acc


@torch.no_grad()
def score_crops(model: GenD, images: np.ndarray, pp: Preprocessing, batch_size: int = 32) -> np.ndarray:
    """Fake probability of each crop."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        logits = model(to_tensor(images[i : i + batch_size], pp))
        out.append(torch.softmax(logits, dim=-1)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def evaluate(model: GenD, crops: CropSet, pp: Preprocessing) -> dict:
    scores = score_crops(model, crops.images, pp)
    labels = crops.labels()
    return {"auc": roc_auc(labels, scores), "n_real": int((labels == 0).sum()), "n_fake": int(labels.sum())}
