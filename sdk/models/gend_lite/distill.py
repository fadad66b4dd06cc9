"""Distillation: a GenD teacher's judgement into a student whose every weight trains.

``deepfake-sdk distill --teacher gend-fp32 --student efficientnet-lite0 --data ../shared/data``
(or ``deepfake_sdk.distill(...)``). The student sees the teacher's training universe and more:
every manifest's crops, a degraded copy of half of them, one self-blend per real face and
``views_per_crop`` augmented views of every crop (flip, scale/shift, colour, blur, JPEG), all
labelled by the teacher (which labels any face; the extra faces cost one teacher pass each).
The loss is

* ``T^2 * KL(teacher || student)`` on temperature-``T`` probabilities (the teacher's soft
  judgement, including how unsure it is);
* ``1 - cos(projector(student feature), teacher unit feature)``: the student's feature,
  mapped by a training-only linear projector, points where the teacher's does (logits alone
  carry one number per face; the feature carries why). A multi-block teacher's 18,432-d
  feature is kept as a fixed random projection, optionally centred;
* cross-entropy on the labels, generated fakes up-weighted as GenD's recipe does.

Which teacher judgement: the shipped teacher's (:class:`TeacherLabels`), or, for a teacher whose
head is a logistic regression on frozen block summaries, a cross-fitted one
(:class:`CrossFittedTeacher`): the shipped head has seen every training crop and calls them
almost perfectly, so its soft labels on them are nearly the hard labels; heads fitted without
an item's source judge it as the teacher judges faces it never saw.

The teacher runs once per item: its outputs (or block summaries) are cached on disk, keyed by
the item's pixels (crop and augmentation), and the student's training is checkpointed every
epoch, so reruns resume and a CPU trains the student alone. Held-out family folds (a stress
test) train a student on the fold's training items; the card's ``validation`` section puts the
student beside the teacher on the validation set, per family.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ...artifact import atomic_path, sha256_file
from ...device import device_info
from ...metrics import roc_auc
from ...paths import cache_dir
from ...preprocess import to_batch
from ...training.baselines import LogisticProbe, metadata_features
from ...training import validation
from ...training.features import block_summaries
from ...training.folds import Fold, make_folds
from ...training.items import Items, capped, items_for, load_crops, weighted_for
from ...training.records import model_card, write_card
from ...training.runs import THRESHOLD_FPR, autocast, fast_bf16, resolve_device, threshold_at_fpr
from ...zoo import ModelSpec, get_spec, student_spec
from ..backbones import backbone_provenance
from ..contract import DetectorModel
from ..factory import create_model
from ..flops import model_macs
from ..gend.model import BlockNormHead

from ..tensors import pack_int8, stored_roundtrip

STORAGE_NOTE = ("conv/linear weights stored INT8, symmetric, one FP32 scale per output channel; the stem "
                "(export_hints().stem) and every other tensor FP16. Every student is put on that grid before it is "
                "scored, so the folds, the threshold and the agreement are those of the stored weights")


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 2
    fold_epochs: int = 1  # each held-out fold's student (the card's columns)
    folds: str = "family"  # "family": leave each family out; "none": the final student only
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    temperature: float = 2.0
    w_kl: float = 1.0
    w_feature: float = 1.0
    w_ce: float = 0.5
    sbi_per_real: int = 1
    degrade: float = 0.5  # share of crops and self-blends that train as a degraded copy
    views_per_crop: int = 2  # augmented views of every crop, trained beside it (training.items.augmented)
    teacher_feature_dim: int = 1024  # the teacher's unit feature, randomly projected to at most this many dims
    # Match the teacher's features after removing their mean over the training items: the
    # multi-block feature shares one large direction (cosine loss ~0.05 from the first steps),
    # so uncentred it says little about how faces differ.
    center_teacher_features: bool = True
    # A multi-block teacher's head is a logistic regression fitted on these very crops: on them
    # its probabilities are near 0/1 (AUC 0.996 on the training crops, 0.854 on validation), so
    # its "soft" labels are the labels. With crossfit_parts > 0 each item is judged instead by a
    # head fitted without its source's part of the sources (the teacher's frozen backbone, the
    # same readout and C): how the teacher judges sources it never saw.
    crossfit_parts: int = 5
    generated_weight: float = 2.0
    per_source_cap: int | None = 400
    fold_per_source_cap: int | None = 150  # fold students see fewer faces per source: five of them on a CPU
    teacher_batch: int = 32
    device: str = "auto"
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- teacher labels


def _item_keys(images: np.ndarray) -> np.ndarray:
    """A 16-byte digest of each item's pixels: the cache key of 'this crop, this augmentation'."""
    return np.stack([np.frombuffer(hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest()[:16], np.uint8)
                     for im in images])


def feature_projection(dim: int, out_dim: int) -> torch.Tensor | None:
    """A fixed ``(dim, out_dim)`` Gaussian projection (seeded), or None when ``dim <= out_dim``.

    The multi-block teacher's unit feature has 24 x 768 dims; a random projection keeps the
    cosines between features within about 1/sqrt(out_dim) (Johnson-Lindenstrauss) at a
    eighteenth of the cache and of the training-only projector."""
    if dim <= out_dim:
        return None
    generator = torch.Generator().manual_seed(dim * 7919 + out_dim)
    return torch.randn(dim, out_dim, generator=generator) / math.sqrt(out_dim)


def projected(unit: torch.Tensor, projection: torch.Tensor | None) -> torch.Tensor:
    """Unit features through :func:`feature_projection` (unit-normalised again), or as they are."""
    return unit if projection is None else F.normalize(unit @ projection, p=2, dim=-1)


class TeacherLabels:
    """The teacher's logits and unit features for items, computed once and kept on disk.

    One file per teacher (its name, trained-weights checksum and feature size), rows keyed by
    pixel digest; missing rows are computed on demand (bf16 autocast where fast) and saved every
    ``save_every`` items, so an interrupted run resumes where it stopped. A feature wider than
    ``feature_dim`` is stored as its fixed random projection (:func:`feature_projection`),
    unit-normalised again."""

    def __init__(self, teacher: DetectorModel, spec: ModelSpec, device: torch.device, batch: int = 32,
                 save_every: int = 1024, feature_dim: int = 1024):
        self.teacher, self.spec, self.device, self.batch, self.save_every = teacher, spec, device, batch, save_every
        self.feature_dim = feature_dim
        self.projection: torch.Tensor | None = None
        weights = sha256_file(spec.weights_path)[:12] if spec.weights_path and spec.weights_path.is_file() else "none"
        self.path = cache_dir() / "teacher" / f"{spec.base_name}-{weights}-d{feature_dim}.safetensors"
        self.rows: dict[bytes, int] = {}
        self.logits = torch.zeros(0, 2)
        self.features = torch.zeros(0, 0, dtype=torch.float16)
        self.seconds = 0.0
        if self.path.is_file():
            stored = load_file(str(self.path))
            self.logits, self.features = stored["logits"], stored["features"]
            self.rows = {bytes(k): i for i, k in enumerate(stored["keys"].numpy())}

    def __call__(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, 2) float32, unit features (N, D) float32) of these items."""
        keys = [bytes(k) for k in _item_keys(images)]
        todo = [i for i, k in enumerate(keys) if k not in self.rows]
        if todo:
            self._compute(images, keys, todo)
        rows = torch.as_tensor([self.rows[k] for k in keys], dtype=torch.long)
        return self.logits[rows].float(), self.features[rows].float()

    @torch.no_grad()
    def _compute(self, images: np.ndarray, keys: list[bytes], todo: list[int]) -> None:
        t0, done = time.time(), 0
        self.teacher.to(self.device).eval()
        for start in range(0, len(todo), self.batch):
            chunk = todo[start : start + self.batch]
            pixels = torch.from_numpy(to_batch(images[chunk], self.spec.preprocessing)).to(self.device)
            with autocast(self.device):
                logits, feats = self.teacher.logits_and_features(pixels)
            self._append([keys[i] for i in chunk], logits.float().cpu(), self._stored(feats.float().cpu()))
            done += len(chunk)
            if done % self.save_every < self.batch or done == len(todo):
                self._save()
                print(f"[teacher] {done}/{len(todo)} items labelled, {time.time() - t0:.0f} s", flush=True)
        self.seconds += time.time() - t0

    def _stored(self, feats: torch.Tensor) -> torch.Tensor:
        if self.projection is None and feats.shape[1] > self.feature_dim:
            self.projection = feature_projection(feats.shape[1], self.feature_dim)
        return projected(feats, self.projection).half()

    def _append(self, keys: list[bytes], logits: torch.Tensor, feats: torch.Tensor) -> None:
        base = len(self.logits)
        self.logits = torch.cat([self.logits, logits])
        self.features = feats if not len(self.features) else torch.cat([self.features, feats])
        self.rows.update({k: base + i for i, k in enumerate(keys)})

    def _save(self) -> None:
        keys = np.zeros((len(self.rows), 16), np.uint8)
        for k, i in self.rows.items():
            keys[i] = np.frombuffer(k, np.uint8)
        with atomic_path(self.path) as tmp:
            save_file({"keys": torch.from_numpy(keys), "logits": self.logits.contiguous(),
                       "features": self.features.contiguous()}, str(tmp))


def summary_teacher(teacher: DetectorModel) -> bool:
    """A teacher whose head reads cached block summaries (GenD's multi-block readout)."""
    return isinstance(getattr(teacher, "head", None), BlockNormHead) and hasattr(teacher.backbone, "summaries")


def teacher_summaries(teacher: DetectorModel, spec: ModelSpec, images: np.ndarray) -> torch.Tensor:
    """Block summaries of ``images`` (``training.features`` cache), in bf16 autocast where that
    is fast (kept under its own cache name, apart from the FP32 summaries a GenD recipe reads)."""
    device = torch.device("cpu")
    name = f"{spec.backbone}-{'bf16' if fast_bf16(device) else 'fp32'}"
    with autocast(device):
        return block_summaries(teacher.backbone, images, spec.preprocessing, name, batch=32).float()


@dataclass
class CrossFittedTeacher:
    """The multi-block teacher as it judges unseen sources: ``parts`` heads, each a logistic
    regression on the teacher's frozen summaries fitted (with the shipped head's readout, C and
    weights: ``train_blocks.fit``) on every training crop and self-blend but those of one part of
    the sources. An item is judged by the head that never saw its source."""

    heads: list
    part_of: dict[str, int]
    readout: str
    projection: torch.Tensor | None

    @classmethod
    def fit(cls, data_dir: Path, spec: ModelSpec, teacher: DetectorModel, parts: int, feature_dim: int) -> "CrossFittedTeacher":
        from ..gend import train_blocks

        card = json.loads(spec.card_path.read_text())
        chosen = card["validation"]["chosen"]
        cfg = train_blocks.BlocksConfig(**{k: v for k, v in card["config"].items() if k in ("per_source_cap", "generated_weight")})
        universe = train_blocks.prepare(data_dir, spec, cfg, teacher.backbone)
        sources = np.array([s.source for s in universe.crops.samples])
        names = sorted(set(sources))
        part_of = {name: k % parts for k, name in enumerate(names)}
        every = np.arange(len(sources))
        heads = []
        for part in range(parts):
            train = every[np.array([part_of[n] != part for n in sources])]
            heads.append(train_blocks.fit(universe, train, chosen["readout"], chosen["c"], cfg))
            print(f"[crossfit] head {part + 1}/{parts} fitted without {sum(v == part for v in part_of.values())} sources",
                  flush=True)
        dim = train_blocks.readout_features(universe.features[:1], chosen["readout"]).shape[1]
        return cls(heads, part_of, chosen["readout"], feature_projection(dim, feature_dim))

    def __call__(self, summaries: torch.Tensor, sources: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(two-class logits, unit features projected like :class:`TeacherLabels`'s) per item."""
        from ..gend.train_blocks import readout_features

        x = readout_features(summaries, self.readout)
        decision = torch.zeros(len(x))
        part = np.array([self.part_of.get(s, 0) for s in sources])
        for k, head in enumerate(self.heads):
            rows = np.flatnonzero(part == k)
            if len(rows):
                decision[rows] = torch.from_numpy(head.decision(x[rows])).float()
        return torch.stack([-decision / 2, decision / 2], -1), projected(F.normalize(x, p=2, dim=-1), self.projection)


# ------------------------------------------------------------------------------- the losses


def distill_loss(student_logits: torch.Tensor, projected: torch.Tensor, teacher_logits: torch.Tensor,
                 teacher_features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                 cfg: DistillConfig) -> tuple[torch.Tensor, dict]:
    """KL to the teacher's tempered probabilities + feature cosine + weighted label CE."""
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                  log_target=True, reduction="batchmean") * t * t
    cos = 1.0 - F.cosine_similarity(projected, teacher_features, dim=-1).mean()
    ce = (F.cross_entropy(student_logits, labels, reduction="none") * weights).mean()
    loss = cfg.w_kl * kl + cfg.w_feature * cos + cfg.w_ce * ce
    return loss, {"loss": round(loss.item(), 4), "kl": round(kl.item(), 4), "cos": round(cos.item(), 4),
                  "ce": round(ce.item(), 4)}


# ---------------------------------------------------------------------------------- training


def fresh_student(spec: ModelSpec) -> DetectorModel:
    """The student's pretrained backbone (ImageNet / DINOv2) and an untrained head."""
    return create_model(replace(spec, weights=None))


def train_student(spec: ModelSpec, items: Items, idx: np.ndarray, targets: tuple[torch.Tensor, torch.Tensor],
                  cfg: DistillConfig, epochs: int, checkpoint: Path | None = None) -> tuple[DetectorModel, dict]:
    """A fresh student trained on items ``idx`` against the teacher's outputs for them
    (``targets``: logits (N, 2) and unit features (N, D), row k for item ``idx[k]``).

    With ``checkpoint``, the student, projector, optimiser and schedule are saved there after
    every epoch and a run with the same items and settings resumes from the last one (each
    epoch draws its order and flips from ``(seed, epoch)``, so a resumed run trains as an
    unbroken one would)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    t_logits, t_feats = targets
    if cfg.center_teacher_features:
        t_feats = F.normalize(t_feats - t_feats.mean(0, keepdim=True), p=2, dim=-1)
    items = weighted_for(items, idx)
    student = fresh_student(spec).to(device).train()
    projector = nn.Linear(student.head.linear.in_features, t_feats.shape[1]).to(device)
    params = [*student.parameters(), *projector.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = max(1, epochs * math.ceil(len(idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.min_lr)
    parts = {"student": student, "projector": projector, "opt": opt, "sched": sched}
    first, steps = _resume(checkpoint, parts, idx)
    row_of = {int(item): k for k, item in enumerate(idx)}
    start = time.time()
    for epoch in range(first, epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        order = idx[rng.permutation(len(idx))]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i : i + cfg.batch_size]
            rows = torch.as_tensor([row_of[int(j)] for j in b])
            x = items.images[b].copy()
            flip = rng.random(len(b)) < 0.5
            x[flip] = x[flip, :, ::-1]
            pixels = torch.from_numpy(to_batch(x, spec.preprocessing)).to(device)
            with autocast(device):
                feats = student.backbone(pixels)
            feats = feats.float()
            loss, entry = distill_loss(student.head(feats), projector(feats), t_logits[rows].to(device),
                                       t_feats[rows].to(device), torch.from_numpy(items.labels[b]).to(device),
                                       torch.from_numpy(items.weights[b]).float().to(device), cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            steps.append({"epoch": epoch, "step": len(steps) + 1, **entry, "elapsed_s": round(time.time() - start, 1)})
            if len(steps) % 20 == 0 or len(steps) == total:
                print(steps[-1], flush=True)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, parts, idx, epoch + 1, steps)
    student = student.eval().cpu()
    stored_roundtrip(student, shipped_state(student), student.export_hints().stem)
    epoch_steps = [s["elapsed_s"] for s in steps if s["epoch"] == first] if first < epochs else []
    return student, {"seconds": round(time.time() - start, 1), "device": str(device), "steps": len(steps),
                     "items": int(len(idx)), "resumed_at_epoch": first,
                     "first_epoch_seconds": epoch_steps[-1] if epoch_steps else None,
                     "last": steps[-1] if steps else None}


def _items_digest(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def _save_checkpoint(path: Path, parts: dict, idx: np.ndarray, epochs_done: int, steps: list[dict]) -> None:
    """Tensors and plain numbers only: read back with ``weights_only=True``."""
    state = {name: part.state_dict() for name, part in parts.items()}
    state["meta"] = {"epochs_done": epochs_done, "items": _items_digest(idx), "steps": json.dumps(steps)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    print(f"[checkpoint] {epochs_done} epoch(s) saved to {path}", flush=True)


def _resume(path: Path | None, parts: dict, idx: np.ndarray) -> tuple[int, list[dict]]:
    """(first epoch to train, steps so far): 0 and [] unless ``path`` holds this run's checkpoint."""
    if path is None or not path.is_file():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["meta"]["items"] != _items_digest(idx):
        print(f"[checkpoint] {path} is another run's (other items): starting afresh", flush=True)
        return 0, []
    for name, part in parts.items():
        part.load_state_dict(state[name])
    print(f"[checkpoint] resuming after epoch {state['meta']['epochs_done']}", flush=True)
    return int(state["meta"]["epochs_done"]), json.loads(state["meta"]["steps"])


def checkpoint_path(spec: ModelSpec, cfg: DistillConfig, teacher: str, purpose: str) -> Path:
    """Where a run of these settings keeps its checkpoint (settings that change training change it)."""
    key = hashlib.sha256(json.dumps({**cfg.to_dict(), "threads": None, "device": None, "teacher": teacher,
                                     "purpose": purpose}, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "distill" / f"{spec.base_name}-{key}.pt"


def shipped_state(student: DetectorModel) -> dict[str, torch.Tensor]:
    """The tensors a distilled student ships (BatchNorm step counters are not weights)."""
    return {k: v for k, v in student.trained_state_dict().items() if not k.endswith("num_batches_tracked")}


@torch.no_grad()
def student_scores(student: DetectorModel, images: np.ndarray, spec: ModelSpec, batch: int = 64) -> np.ndarray:
    out = [torch.softmax(student(torch.from_numpy(to_batch(images[i : i + batch], spec.preprocessing))), -1)[:, 1]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def agreement(student: np.ndarray, teacher: np.ndarray, s_threshold: float, t_threshold: float) -> dict:
    """Pearson of the fake probabilities and the share of faces whose decision differs."""
    pearson = float(np.corrcoef(student, teacher)[0, 1]) if len(student) > 1 else float("nan")
    flips = float(np.mean((student >= s_threshold) != (teacher >= t_threshold))) if len(student) else float("nan")
    return {"pearson": round(pearson, 4), "decision_flips": round(flips, 4), "faces": int(len(student))}


# -------------------------------------------------------------------------------- the recipe


@dataclass
class Distillation:
    """What the folds and the final student share: data, items, teacher labels, metadata."""

    data_dir: Path
    teacher_spec: ModelSpec
    student_spec: ModelSpec
    cfg: DistillConfig
    crops: object
    items: Items
    labels: TeacherLabels
    metadata: np.ndarray
    crossfit: CrossFittedTeacher | None = None

    @classmethod
    def prepare(cls, data_dir: Path, teacher: str, student: str, cfg: DistillConfig) -> "Distillation":
        t_spec, s_spec = get_spec(teacher), get_spec(student)
        if t_spec.preprocessing.size != s_spec.preprocessing.size or t_spec.preprocessing.margin != s_spec.preprocessing.margin:
            raise ValueError("teacher and student must see the same aligned crop (size and margin)")
        torch.set_num_threads(cfg.threads)
        crops = load_crops(Path(data_dir), t_spec.preprocessing)
        items = items_for(crops, np.arange(len(crops.samples)), cfg, np.random.default_rng(cfg.seed))
        teacher_model = create_model(t_spec)
        labels = TeacherLabels(teacher_model, t_spec, resolve_device(cfg.device), cfg.teacher_batch,
                               feature_dim=cfg.teacher_feature_dim)
        crossfit = None
        if cfg.crossfit_parts and summary_teacher(teacher_model):
            crossfit = CrossFittedTeacher.fit(Path(data_dir), t_spec, teacher_model, cfg.crossfit_parts,
                                              cfg.teacher_feature_dim)
        elif cfg.crossfit_parts:
            print(f"[teacher] {teacher}'s head does not read block summaries: the shipped teacher labels every item",
                  flush=True)
        return cls(Path(data_dir), t_spec, s_spec, cfg, crops, items, labels, metadata_features(crops.samples, data_dir),
                   crossfit)

    def targets(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits and unit features for items ``idx``: cross-fitted where the
        config asks (:class:`CrossFittedTeacher`), else the shipped teacher's (:class:`TeacherLabels`)."""
        if self.crossfit is None:
            return self.labels(self.items.images[idx])
        t0 = time.time()
        summaries = teacher_summaries(self.labels.teacher, self.teacher_spec, self.items.images[idx])
        self.labels.seconds += time.time() - t0
        return self.crossfit(summaries, [self.crops.samples[o].source for o in self.items.origin[idx]])

    @property
    def teacher_key(self) -> str:
        return self.labels.path.name + (f"-crossfit{self.cfg.crossfit_parts}" if self.crossfit else "")

    def train_items(self, sample_idx: np.ndarray, cap: int | None) -> np.ndarray:
        chosen = capped(self.crops.samples, sample_idx, cap)
        train = self.items.training()
        return train[np.isin(self.items.origin[train], chosen)]

    def crop_items(self, sample_idx: np.ndarray) -> np.ndarray:
        first = {int(o): k for k, o in enumerate(self.items.origin[: len(self.crops.samples)])}
        return np.array([first[int(i)] for i in sample_idx], dtype=int)

    def teacher_scores(self, sample_idx: np.ndarray) -> np.ndarray:
        logits, _ = self.labels(self.items.images[self.crop_items(sample_idx)])
        return torch.softmax(logits, -1)[:, 1].numpy()

    def evaluate_fold(self, fold: Fold, teacher_card: dict) -> dict:
        y = self.crops.labels()
        train = self.train_items(fold.train, self.cfg.fold_per_source_cap)
        student, log = train_student(self.student_spec, self.items, train, self.targets(train), self.cfg, self.cfg.fold_epochs)
        ours = student_scores(student, self.crops.images[fold.test], self.student_spec)
        teacher = self.teacher_scores(fold.test)
        meta = LogisticProbe().fit(self.metadata[fold.train], y[fold.train]).predict(self.metadata[fold.test])
        fold_teacher = next((r.get("auc") for r in teacher_card.get("held_out", {}).get("folds", [])
                             if r.get("name") == fold.name), None)
        return {**fold.describe(self.crops.samples), "auc": roc_auc(y[fold.test], ours),
                "auc_teacher_fold": fold_teacher, "auc_teacher_final": roc_auc(y[fold.test], teacher),
                "auc_metadata_control": roc_auc(y[fold.test], meta),
                "agreement_with_teacher": agreement(ours, teacher, 0.5, self.teacher_spec.threshold),
                "train": log}


def distill(teacher: str, student: str, data_dir: Path, out_dir: Path | None = None,
            cfg: DistillConfig | None = None, command: str = "", **config) -> dict:
    """Distil ``teacher`` (a zoo name) into ``student`` (a zoo name or the backbone it is registered
    on, ``efficientnet-lite0``): the final student first (written with its card at once), then each
    held-out fold, the card rewritten after each. ``config``: :class:`DistillConfig` fields."""
    started = time.time()
    cfg = replace(cfg or DistillConfig(), **config)
    run = Distillation.prepare(Path(data_dir), teacher, student_spec(student).name, cfg)
    spec = run.student_spec
    out_dir = Path(out_dir) if out_dir else spec.weights_path.parent
    folds, final = make_folds(run.crops.samples)
    print(f"[final] {spec.name} on {len(final.train)} crops (real pool of {len(final.test)} held out)", flush=True)
    train = run.train_items(final.train, cfg.per_source_cap)
    model, log = train_student(spec, run.items, train, run.targets(train), cfg, cfg.epochs,
                               checkpoint_path(spec, cfg, run.teacher_key, "final"))
    pool = student_scores(model, run.crops.images[final.test], spec)
    threshold = threshold_at_fpr(pool, THRESHOLD_FPR)
    teacher_pool = run.teacher_scores(final.test)
    card = _card(run, final, log, threshold, agreement(pool, teacher_pool, threshold, run.teacher_spec.threshold),
                 model, command)
    if validation.has_validation(run.data_dir):
        card["validation"] = validation_section(run, model, threshold)
        print(f"[validation] student {card['validation']['overall']['auc']} vs teacher "
              f"{card['validation']['teacher']['overall']['auc']}", flush=True)
    _write(out_dir, spec, model, card)
    teacher_card = _read_card(run.teacher_spec)
    for fold in folds if cfg.folds == "family" else []:
        if fold.kind != "family":
            continue
        print(f"[fold] {fold.name}: train {len(fold.train)}, test {len(fold.test)}", flush=True)
        card["held_out"]["folds"].append(run.evaluate_fold(fold, teacher_card))
        card["held_out"]["mean"] = _means(card["held_out"]["folds"])
        card["trained_on"]["total_seconds"] = round(time.time() - started, 1)
        print(f"[fold] {card['held_out']['folds'][-1]}", flush=True)
        write_card(out_dir, spec, card)
    card["trained_on"]["total_seconds"] = round(time.time() - started, 1)
    card["trained_on"]["teacher_label_seconds"] = round(run.labels.seconds, 1)
    write_card(out_dir, spec, card)
    return card


def validation_section(run: Distillation, student: DetectorModel, threshold: float) -> dict:
    """The yardstick (never trained, calibrated or thresholded on): the student's AUC overall and
    per family with intervals and the metadata control, the teacher's on the same faces, and
    their agreement there (Pearson; decisions that differ, each at its own threshold)."""
    val = validation.validation_crops(run.data_dir, run.student_spec.preprocessing)
    ours = student_scores(student, val.images, run.student_spec)
    teacher = student_scores(run.labels.teacher.cpu().eval(), val.images, run.teacher_spec)
    control = validation.metadata_control(run.data_dir, val.samples)
    report = validation.report(val.samples, ours, control)
    teacher_report = validation.report(val.samples, teacher)
    return {"manifest": validation.VALIDATION_MANIFEST, "faces": len(val.samples), **report,
            "teacher": {"model": run.teacher_spec.base_name, **teacher_report},
            "gap_to_teacher": {k: round(teacher_report[k]["auc"] - report[k]["auc"], 4) for k in report},
            "agreement_with_teacher": {k: agreement(ours[keep], teacher[keep], threshold, run.teacher_spec.threshold)
                                       for k, keep in validation.subsets(val.samples).items()}}


def restore(teacher: str, student: str, data_dir: Path, out_dir: Path | None = None) -> dict:
    """Re-store a distilled student's tensors in today's format (:data:`STORAGE_NOTE`) without
    training: the shipped weights are put on the storage grid, then the threshold and the
    real-pool agreement are measured again on that grid, with how far the scores moved. The
    calibration profile is keyed by the tensors' SHA-256: record it again afterwards
    (``deepfake-sdk calibration record <student>-fp32 --data ...``)."""
    t_spec, spec = get_spec(teacher), student_spec(student)
    card = _read_card(spec)
    if not card:
        raise ValueError(f"{spec.name} has no model card to restore from: distil it first")
    crops = load_crops(Path(data_dir), spec.preprocessing)
    _, final = make_folds(crops.samples)
    pool_images = crops.images[final.test]
    model = create_model(spec)
    before = student_scores(model, pool_images, spec)
    stored_roundtrip(model, shipped_state(model), model.export_hints().stem)
    pool = student_scores(model, pool_images, spec)
    threshold = threshold_at_fpr(pool, THRESHOLD_FPR)
    teacher_pool = student_scores(create_model(t_spec), pool_images, t_spec)
    card["held_out"]["agreement_with_teacher_on_real_pool"] = agreement(pool, teacher_pool, threshold, t_spec.threshold)
    card["threshold"]["value"] = round(threshold, 6)
    card["weights_storage"] = STORAGE_NOTE
    card["storage_change"] = {"from_sha256": card.get("trained_tensors", {}).get("sha256"),
                              "against_previous_weights_on_real_pool": agreement(pool, before, threshold, spec.threshold),
                              "note": "held-out folds were scored before this change (FP32 fold students)"}
    _write(Path(out_dir) if out_dir else spec.weights_path.parent, spec, model, card)
    return card


def _means(folds: list[dict]) -> dict:
    keys = ("auc", "auc_teacher_fold", "auc_teacher_final", "auc_metadata_control")
    rows = [r for r in folds if not any(r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) for k in keys)]
    return {"family": {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}} if rows else {}


def _read_card(spec: ModelSpec) -> dict:
    try:
        return json.loads(spec.card_path.read_text())
    except (OSError, ValueError, AttributeError):
        return {}


def _card(run: Distillation, final: Fold, log: dict, threshold: float, pool_agreement: dict, model: DetectorModel,
          command: str) -> dict:
    spec, t_spec, cfg = run.student_spec, run.teacher_spec, run.cfg
    params = int(sum(p.numel() for p in model.parameters()))
    return model_card(
        spec,
        architecture=f"GenD-Lite: {spec.backbone} (every weight trained), L2-normalised feature, Linear(D, 2)",
        backbone_weights=backbone_provenance(spec.backbone),
        teacher={"model": t_spec.base_name, "threshold": t_spec.threshold,
                 "weights_sha256": sha256_file(t_spec.weights_path) if t_spec.weights_path else None},
        size={"parameters": params, "macs_per_image": model_macs(model, spec.preprocessing.size),
              "input": spec.preprocessing.size},
        recipe="distill",
        recipe_note=(f"T={cfg.temperature} KL x{cfg.w_kl} + feature cosine (training-only projector) x{cfg.w_feature}"
                     f" + label CE x{cfg.w_ce}; crops, degraded copies ({cfg.degrade:.0%}), {cfg.sbi_per_real} "
                     f"self-blend per real and {cfg.views_per_crop} augmented views per crop (flip, scale/shift, "
                     "colour, blur, JPEG 60-95), all labelled by the teacher once (cached): "
                     + (f"cross-fitted: each item judged by a head fitted without its source's part "
                        f"({cfg.crossfit_parts} parts of the sources)" if run.crossfit else "the shipped teacher")
                     + f"; teacher features projected to {cfg.teacher_feature_dim} dims"
                     + (", centred over the training items" if cfg.center_teacher_features else "") + "; horizontal flips"),
        data={"folder": str(run.data_dir), "manifests": run.crops.manifest_sha256, "crops": len(run.crops.samples),
              "training_items": log["items"], "generated_fake_weight": cfg.generated_weight,
              "per_source_cap": cfg.per_source_cap},
        held_out={
            "real_pool_sources": list(final.held_out_sources), "real_pool_faces": int(len(final.test)),
            "agreement_with_teacher_on_real_pool": pool_agreement,
            "folds": [], "mean": {},
            "note": ("each fold's student trains only on the fold's training items, but their soft labels come from "
                     "the shipped teacher, which trained on every family: auc_teacher_fold is the teacher trained "
                     "without that family (its own card), auc_teacher_final the shipped teacher on the same faces"),
        },
        threshold={"value": round(threshold, 6), "chosen_at_fpr": THRESHOLD_FPR,
                   "on": f"{len(final.test)} held-out real faces (the real pool; not trained on)"},
        provenance={
            "command": command, "seed": cfg.seed, "config": cfg.to_dict(), "weights_storage": STORAGE_NOTE,
            "trained_on": {"device": log["device"], "machine": f"{platform.system()} {platform.machine()}",
                           "cpu": device_info().cpu_model, "final_train_seconds": log["seconds"]},
            "final_loss": log["last"],
            "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__},
    )


def _write(out_dir: Path, spec: ModelSpec, model: DetectorModel, card: dict) -> None:
    """The student's tensors (INT8-stored where :data:`STORAGE_NOTE` says) and its card."""
    write_card(out_dir, spec, card, pack_int8(shipped_state(model), model.export_hints().stem))


def run(args) -> dict:
    """``deepfake-sdk distill`` / ``train gend-lite-...``: the family's training command."""
    if getattr(args, "restore", False):
        return restore(args.teacher, args.student, Path(args.data), Path(args.out) if args.out else None)
    cfg = DistillConfig(epochs=args.epochs, seed=args.seed, device=args.device,
                        folds="none" if args.no_eval else "family")
    command = (f"deepfake-sdk distill --teacher {args.teacher} --student {args.student} --data {args.data} "
               f"--epochs {args.epochs} --seed {args.seed}" + (" --no-eval" if args.no_eval else ""))
    return distill(args.teacher, args.student, Path(args.data), Path(args.out) if args.out else None, cfg, command)
