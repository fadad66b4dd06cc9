"""One gate vocabulary: how a candidate's scores differ from the float reference, and the limits.

The same :class:`Gate` decides at build time (``load()``/``export`` on 128 crops, where it
picks mixed precision) and at release time (``deepfake-sdk verify`` on ~615 held-out faces,
exit 1 on drift). Both judge the flip rate by a one-sided Wilson 95% bound, from opposite sides:

- the release gate (:meth:`Gate.release`, the class defaults) asks the artifact to *show* it is
  faithful: the rate's **upper** bound must be within the limit. It counts flips averaged over
  thresholds within ±0.03 of the model's (:func:`flips_near_threshold`), so one face sitting on
  the threshold, which a different CPU or thread count may put on either side, moves the count
  by a fraction, not by a whole face;
- the build gate (:meth:`Gate.build`) sees too few faces to show that (0 of 128 still allows
  2.07%), so it fails a build only when the **lower** bound is over the limit (clear drift), and
  leaves the release verdict to ``verify``.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from statistics import NormalDist

import numpy as np

from ..errors import UsageError
from ..metrics import detection_metrics, spearman


@dataclass(frozen=True)
class ParityMetrics:
    """Candidate vs reference on the same faces. Drops/increases are reference minus candidate
    for AUC (positive = worse) and candidate minus reference for EER (positive = worse)."""

    n: int
    pearson: float
    spearman: float
    flip_rate: float
    flips: int
    max_abs_diff: float
    p99_abs_diff: float
    mean_abs_diff: float
    nonfinite: int
    auc_reference: float | None = None
    auc: float | None = None
    auc_drop: float | None = None
    eer_reference: float | None = None
    eer: float | None = None
    eer_increase: float | None = None
    threshold_shift: float | None = None  # EER threshold, candidate minus reference
    feature_cosine_mean: float | None = None
    feature_cosine_min: float | None = None
    flips_near_threshold: float | None = None  # flips averaged over thresholds within FLIP_BAND


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None,
            threshold: float = 0.5, ref_features: np.ndarray | None = None,
            features: np.ndarray | None = None) -> ParityMetrics:
    """Parity metrics of candidate fake probabilities against reference ones (same order)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    finite = np.isfinite(candidate)
    nonfinite = int((~finite).sum())
    cand = np.where(finite, candidate, 0.5)
    diff = np.abs(cand - reference)
    flips = int(np.sum((reference >= threshold) != (cand >= threshold)))
    out = dict(n=len(reference), pearson=_corr(reference, cand), spearman=spearman(reference, cand),
               flip_rate=flips / max(len(reference), 1), flips=flips,
               flips_near_threshold=flips_near_threshold(reference, cand, threshold), max_abs_diff=float(diff.max()),
               p99_abs_diff=float(np.percentile(diff, 99)), mean_abs_diff=float(diff.mean()), nonfinite=nonfinite)
    ref_m = detection_metrics(labels, reference) if labels is not None else None
    cand_m = detection_metrics(labels, cand) if labels is not None else None
    if ref_m and cand_m:
        out.update(auc_reference=ref_m["auc"], auc=cand_m["auc"], auc_drop=ref_m["auc"] - cand_m["auc"],
                   eer_reference=ref_m["eer"], eer=cand_m["eer"], eer_increase=cand_m["eer"] - ref_m["eer"],
                   threshold_shift=cand_m["eer_threshold"] - ref_m["eer_threshold"])
    if ref_features is not None and features is not None:
        cos = np.sum(_unit(ref_features) * _unit(features), axis=1)
        out.update(feature_cosine_mean=float(np.nanmean(cos)), feature_cosine_min=float(np.nanmin(cos)))
    return ParityMetrics(**out)


FLIP_BAND = 0.03  # +- around the threshold over which ``flips_near_threshold`` averages


def flips_near_threshold(reference: np.ndarray, candidate: np.ndarray, threshold: float,
                         band: float = FLIP_BAND, steps: int = 61) -> float:
    """Faces flipped, averaged over thresholds evenly spaced within ``band`` of ``threshold``.

    The flip count at one threshold rests on the few reference scores that happen to lie next to
    it, and moves by a face between machines of one CPU class (gend-clip-b16 on LiteRT, the same
    build on two AMD EPYCs: 2 and 3 flips of 284). Averaged over nearby thresholds it says how
    often the candidate's error carries a face across a decision boundary, so a record can ask a
    pass to hold with a face to spare (``numerics``)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    cuts = threshold + np.linspace(-band, band, steps)
    return float(np.mean([np.sum((reference >= c) != (candidate >= c)) for c in cuts]))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Check:
    metric: str
    value: float | None
    limit: float
    kind: str  # "max" or "min"
    passed: bool
    judged: float | None = None  # what met the limit, where not the value itself (the flip rate's bound)

    @property
    def margin(self) -> float | None:
        """How far inside the limit the judged quantity is (negative: outside)."""
        judged = self.value if self.judged is None else self.judged
        if judged is None or (isinstance(judged, float) and math.isnan(judged)):
            return None
        return float(self.limit - judged if self.kind == "max" else judged - self.limit)


RELEASE_MAX_FLIP_RATE = 0.02  # on the flip rate's 95% upper bound: see docs/parity.md for why 2%


@dataclass(frozen=True)
class Gate:
    """Limits a candidate must meet against its reference; None switches a limit off.

    The flip rate counts faces whose decision at the model's threshold changes. With
    ``flip_confidence`` set it is judged by its one-sided Wilson bound at that confidence:
    ``flip_bound="upper"`` passes only when the upper bound is within ``max_flip_rate`` (the
    release gate: the faces must show the rate is small), ``"lower"`` fails only when the lower
    bound exceeds it (the build gate: 3/128 passes, 4/128 fails at 0.95). With ``flip_averaged``
    the count is the flips averaged over thresholds within ±:data:`FLIP_BAND` of the threshold, so
    a face on the threshold counts a fraction. Tighten any limit for a release
    (``--max-flip-rate 0.01``) or load them from a file (:meth:`from_file`).
    """

    max_auc_drop: float | None = 0.005
    max_flip_rate: float | None = RELEASE_MAX_FLIP_RATE
    min_pearson: float | None = 0.995
    max_eer_increase: float | None = None
    max_p99_abs_diff: float | None = None
    min_feature_cosine: float | None = None  # mean cosine of L2 features, where the candidate has them
    max_nonfinite: int | None = 0
    flip_confidence: float | None = 0.95
    flip_bound: str = "upper"
    flip_averaged: bool = True

    def __post_init__(self) -> None:
        if self.flip_bound not in ("upper", "lower"):
            raise UsageError(f"flip_bound must be 'upper' or 'lower', not {self.flip_bound!r}")
        if self.flip_confidence is not None and not 0.5 <= self.flip_confidence < 1:
            raise UsageError(f"flip_confidence must be in [0.5, 1), not {self.flip_confidence}")

    # metric name in ParityMetrics -> (limit field, "max" or "min")
    LIMITS = {"auc_drop": ("max_auc_drop", "max"), "flip_rate": ("max_flip_rate", "max"),
              "pearson": ("min_pearson", "min"), "eer_increase": ("max_eer_increase", "max"),
              "p99_abs_diff": ("max_p99_abs_diff", "max"), "feature_cosine_mean": ("min_feature_cosine", "min"),
              "nonfinite": ("max_nonfinite", "max")}

    @classmethod
    def release(cls) -> "Gate":
        """``deepfake-sdk verify``'s default: the flip rate's 95% upper bound, band-averaged, on
        the release set's ~615 held-out faces."""
        return cls()

    @classmethod
    def build(cls) -> "Gate":
        """The build gate of ``load()``/``export``: 1% flips at the threshold, failed only when
        the 95% lower bound exceeds it (128 faces cannot show a rate is small)."""
        return cls(max_flip_rate=0.01, flip_confidence=0.95, flip_bound="lower", flip_averaged=False)

    @classmethod
    def from_file(cls, path: str | Path) -> "Gate":
        """JSON or TOML with any of the field names (a ``[gate]`` table in TOML is also read)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read policy file {path}: {exc}") from exc
        data = data.get("gate", data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"policy file {path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def overridden(self, **overrides) -> "Gate":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    def checks(self, metrics: ParityMetrics) -> list[Check]:
        """One Check per active limit; a missing metric (no labels, no features) is not checked."""
        out = []
        for metric, (limit_name, kind) in self.LIMITS.items():
            limit, value = getattr(self, limit_name), getattr(metrics, metric)
            if limit is None or value is None:
                continue
            judged = self.judged_flip_rate(metrics) if metric == "flip_rate" else value
            ok = (judged <= limit if kind == "max" else judged >= limit) and not (
                isinstance(judged, float) and math.isnan(judged))
            out.append(Check(metric, value, limit, kind, bool(ok), judged if metric == "flip_rate" else None))
        return out

    def flip_count(self, metrics: ParityMetrics) -> float:
        """The flips this gate judges: averaged over the band where it has one, else at the threshold."""
        if self.flip_averaged and metrics.flips_near_threshold is not None:
            return metrics.flips_near_threshold
        return float(metrics.flips)

    def judged_flip_rate(self, metrics: ParityMetrics) -> float:
        """The flip rate as this gate compares it with ``max_flip_rate``: its Wilson bound on the side
        ``flip_bound`` names, or the raw rate without ``flip_confidence``."""
        count = self.flip_count(metrics)
        if self.flip_confidence is None:
            return count / max(metrics.n, 1)
        return _wilson(count, metrics.n, self.flip_confidence, +1 if self.flip_bound == "upper" else -1)

    def too_few_faces(self, n: int) -> str | None:
        """Why ``n`` faces can never pass this gate's flip check, or None: an upper bound judged on
        few faces stays above the limit even with no flip (0 of 32 still allows 7.8%)."""
        if self.max_flip_rate is None or self.flip_confidence is None or self.flip_bound != "upper":
            return None
        floor = _wilson(0, n, self.flip_confidence, +1)
        if floor <= self.max_flip_rate:
            return None
        z2 = NormalDist().inv_cdf(self.flip_confidence) ** 2
        needed = math.ceil(z2 * (1 / self.max_flip_rate - 1))
        return (f"{n} faces cannot show a flip rate within {self.max_flip_rate:.2%}: even 0 flips leaves a "
                f"{self.flip_confidence:.0%} upper bound of {floor:.2%}. Verify on at least {needed} faces (the "
                "release set has ~615), or judge by the lower bound (flip_bound = \"lower\" in a policy file) "
                "to screen for clear drift only")

    def flip_evidence(self, metrics: ParityMetrics) -> dict:
        """What a reader needs to trust the flip verdict: the count at the threshold, the band average,
        the bound judged, the limit, and the margin between them."""
        judged = self.judged_flip_rate(metrics)
        limit = self.max_flip_rate
        return {"faces": metrics.n, "flips": metrics.flips, "flips_near_threshold": metrics.flips_near_threshold,
                "band": FLIP_BAND if self.flip_averaged else None, "confidence": self.flip_confidence,
                "bound": self.flip_bound if self.flip_confidence is not None else None,
                "judged_rate": judged, "limit": limit, "margin": None if limit is None else limit - judged}

    def passes(self, metrics: ParityMetrics) -> bool:
        return all(c.passed for c in self.checks(metrics))


def wilson_lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided lower confidence bound of a binomial rate (Wilson score interval)."""
    return _wilson(successes, n, confidence, -1)


def wilson_upper_bound(successes: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial rate (Wilson score interval): the flip rate
    a count of ``successes`` in ``n`` faces cannot rule out (0 flips of 284 still allows 0.94%)."""
    return _wilson(successes, n, confidence, +1)


def _wilson(successes: float, n: int, confidence: float, side: int) -> float:
    if n == 0:
        return 0.0 if side < 0 else 1.0
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(min(1.0, max(0.0, (centre + side * spread) / (1 + z * z / n))))
