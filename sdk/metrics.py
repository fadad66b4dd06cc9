"""Detection metrics computed from scores alone (no sklearn at run time)."""
from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN with one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending; a sample is positive when score >= threshold."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, s[last_of_tie]]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under precision-recall: sum over thresholds of (recall step) x precision, ties grouped."""
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        return float("nan")
    fpr, tpr, _ = roc_curve(labels, scores)
    tps, fps = tpr[1:] * labels.sum(), fpr[1:] * (~labels).sum()
    precision = tps / np.maximum(tps + fps, 1)
    return float(np.sum(np.diff(tpr) * precision))


def eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where false-accept and false-reject rates cross."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fpr - fnr)))
    return float((fpr[i] + fnr[i]) / 2), float(min(thresholds[i], 1.0))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Highest true-positive rate with false-positive rate <= ``max_fpr``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())


def detection_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float] | None:
    """AUC, AP, EER (+ threshold), TPR at 1% and 5% FPR; None unless both classes are present."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    rate, threshold = eer(labels, scores)
    return {"auc": roc_auc(labels, scores), "ap": average_precision(labels, scores), "eer": rate,
            "eer_threshold": threshold, "tpr_at_fpr_1": tpr_at_fpr(labels, scores, 0.01),
            "tpr_at_fpr_5": tpr_at_fpr(labels, scores, 0.05), "n": int(len(labels)),
            "n_fake": int(labels.sum())}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties)."""
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (counts - 1) / 2.0, counts)
    return ranks


def softmax_fake(logits: np.ndarray) -> np.ndarray:
    """P(fake) from ``(N, 2)`` logits, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e[:, 1] / e.sum(axis=1)).astype(np.float32)
