"""Pieces every training run shares: where it runs, its step log, the decision threshold, the
held-out summary a model card carries."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..device import device_info
from ..preprocess import to_batch
from ..zoo import Preprocessing
from .data import Sample

THRESHOLD_FPR = 0.05  # decision threshold: this false-positive rate on the held-out real pool


@dataclass
class TrainLog:
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


def resolve_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 is fast here: CUDA, and CPUs with native bf16 (AVX-512 BF16, AMX); emulated
    bf16 on AVX2 is slower than FP32."""
    fast_cpu = bool({"avx512_bf16", "amx_bf16"} & device_info().features)
    return device.type == "cuda" or (device.type == "cpu" and fast_cpu)


def autocast(device: torch.device):
    """bf16 autocast where it is fast (:func:`fast_bf16`); elsewhere a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_bf16(device))



def pixels(images: np.ndarray, pp: Preprocessing, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(to_batch(np.ascontiguousarray(images), pp)).to(device)


def log_step(log: TrainLog, epoch: int, step: int, total: int, entry: dict, start: float, every: int = 20) -> None:
    log.steps.append({"epoch": epoch, "step": step, **entry, "elapsed_s": round(time.time() - start, 1)})
    if step % every == 0 or step == total:
        print(log.steps[-1], flush=True)


def per_source(samples: list[Sample], idx: np.ndarray, scores: np.ndarray) -> dict:
    """Mean fake score of each held-out source, by label: where a fold's errors come from."""
    out: dict[str, dict] = {}
    for i, score in zip(idx, scores):
        entry = out.setdefault(f"{samples[i].source}:{'fake' if samples[i].label else 'real'}", {"n": 0, "sum": 0.0})
        entry["n"] += 1
        entry["sum"] += float(score)
    return {k: {"n": v["n"], "mean_score": round(v["sum"] / v["n"], 4)} for k, v in sorted(out.items())}


def threshold_at_fpr(real_scores: np.ndarray, fpr: float = THRESHOLD_FPR) -> float:
    """The lowest threshold at which at most ``fpr`` of these real faces score fake."""
    return float(np.quantile(real_scores, 1 - fpr, method="higher")) + 1e-6


def summarize(results: list[dict]) -> dict:
    """Mean AUC over the family folds and over the source folds, for each model of the card (a
    family without a pretrained backbone has no frozen-probe column)."""
    out = {}
    for kind in ("family", "source"):
        rows = [r for r in results if r["kind"] == kind and not math.isnan(r["auc"])]
        if rows:
            out[kind] = {key: round(float(np.mean([r[key] for r in rows])), 4)
                         for key in ("auc", "auc_frozen_probe", "auc_metadata_control") if key in rows[0]}
    return out
