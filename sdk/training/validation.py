"""The yardstick: AUC on ``manifest_validation.csv``, sources disjoint from every training manifest.

Every choice among variants (the default, the fusion rule, a recipe's settings) is made on this
set, and every card reports it: overall and per manipulation family (that family's fakes against
all validation reals), each with a 95% bootstrap interval that resamples whole groups (a clip,
grid or identity: near-duplicates move together), and the metadata-only control beside it, a
model of file traits alone trained on the training manifests. Nothing is ever trained,
calibrated, gated or thresholded on these faces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import roc_auc
from .data import CropSet, Sample, build_crops

VALIDATION_MANIFEST = "manifest_validation.csv"
FAMILIES = ("faceswap", "reenactment", "face_editing", "gan_full_synthesis", "diffusion")
BOOTSTRAP_ROUNDS = 1000


def has_validation(data_dir: Path) -> bool:
    return (Path(data_dir) / VALIDATION_MANIFEST).is_file()


def validation_crops(data_dir: Path, pp) -> CropSet:
    """Aligned crops of the validation manifest (cached like every manifest's)."""
    return build_crops(data_dir, pp.size, pp.margin, manifest=VALIDATION_MANIFEST)


def bootstrap_interval(labels: np.ndarray, scores: np.ndarray, groups: list[str], rounds: int = BOOTSTRAP_ROUNDS,
                       seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the AUC when whole groups are resampled with replacement."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(rounds):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(names), len(names))])
        auc = roc_auc(labels[rows], scores[rows])
        if not np.isnan(auc):
            aucs.append(auc)
    if not aucs:
        return float("nan"), float("nan")
    low, high = np.percentile(aucs, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def auc_with_interval(samples: list[Sample], scores: np.ndarray, keep: np.ndarray) -> dict:
    labels = np.array([s.label for s in samples])[keep]
    groups = [samples[i].group for i in np.flatnonzero(keep)]
    auc = roc_auc(labels, np.asarray(scores)[keep])
    return {"auc": round(auc, 4), "ci95": list(bootstrap_interval(labels, np.asarray(scores)[keep], groups)),
            "real": int((labels == 0).sum()), "fake": int((labels == 1).sum())}


def subsets(samples: list[Sample]) -> dict[str, np.ndarray]:
    """The faces each report row reads: all of them ("overall"), and per family present, that
    family's fakes with every real face."""
    real = np.array([s.label == 0 for s in samples])
    out = {"overall": np.ones(len(samples), bool)}
    out.update({f: real | np.array([s.family == f for s in samples]) for f in FAMILIES
                if any(s.family == f for s in samples)})
    return out


def report(samples: list[Sample], scores: np.ndarray, metadata_scores: np.ndarray | None = None) -> dict:
    """AUC overall and per family (with intervals), and the metadata control's beside each."""
    out = {}
    for name, keep in subsets(samples).items():
        row = auc_with_interval(samples, scores, keep)
        if metadata_scores is not None:
            control = auc_with_interval(samples, metadata_scores, keep)
            row["metadata_control"] = {"auc": control["auc"], "ci95": control["ci95"]}
        out[name] = row
    return out


def table(rows: dict[str, dict]) -> str:
    """Markdown: one row per model's validation report (``{model: report}``), AUC [interval]."""
    cols = ["overall", *FAMILIES]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for model, rep in rows.items():
        cells = [f"{rep[c]['auc']:.3f} [{rep[c]['ci95'][0]:.2f}, {rep[c]['ci95'][1]:.2f}]" if c in rep else "–"
                 for c in cols]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def validation_folder(data_dir: Path) -> Path:
    """A data folder (in the cache) whose ``manifest.csv`` is the validation manifest with absolute
    paths: what ``reference``/``verify`` read, so any model (and any INT8 artifact) is scored on
    the yardstick by the same code as on its release faces."""
    from .data import holdout_folder

    return holdout_folder(data_dir, per_source=1_000_000, manifest=VALIDATION_MANIFEST)


def metadata_control(data_dir: Path, samples: list[Sample]) -> np.ndarray:
    """The metadata-only control's scores for ``samples``: file traits alone, fitted on every
    training manifest of ``data_dir``."""
    from .baselines import LogisticProbe, metadata_features
    from .data import read_manifest
    from .items import MANIFESTS

    train = [s for m in MANIFESTS if (Path(data_dir) / m).is_file() for s in read_manifest(Path(data_dir) / m)]
    probe = LogisticProbe().fit(metadata_features(train, data_dir), np.array([s.label for s in train]))
    return probe.predict(metadata_features(samples, data_dir))


def scored_report(data_dir: Path, paths: list[str], scores: np.ndarray) -> dict:
    """:func:`report` for scores keyed by the validation folder's paths (a reference's rows)."""
    from .data import read_manifest

    by_path = {s.path: s for s in read_manifest(validation_folder(data_dir) / "manifest.csv")}
    samples = [by_path[p] for p in paths]
    return report(samples, np.asarray(scores), metadata_control(data_dir, samples))
