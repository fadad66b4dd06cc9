"""Video-level numbers for a model card: every labelled clip of ``videos.csv`` scored as a user's
``predict clip.mp4`` scores it (sampled frames, face tracks, the most fake track's robust score).

The clips' sources are named against the sources the model trained on: today every clip comes
from a source whose images are in the training manifests (the face-swap tool's demo clips, DFDC),
so the card records this AUC as *seen sources*, not as a held-out measure.
"""
from __future__ import annotations

import csv
import datetime
from pathlib import Path

import numpy as np

from ..metrics import roc_auc
from .data import read_manifest
from .folds import real_pool
from .items import MANIFESTS

VIDEOS_MANIFEST = "videos.csv"


def training_sources(data_dir: Path) -> set[str]:
    """Sources a shipped model's final training saw: every manifest source but the held-out real pool."""
    samples = [s for name in MANIFESTS if (data_dir / name).is_file() for s in read_manifest(data_dir / name)]
    return {s.source for s in samples} - set(real_pool(samples))


def video_evaluation(detector, data_dir: str | Path, fps: float = 2.0, max_frames: int = 16) -> dict:
    """The card's ``videos`` section: per-clip scores, AUC over clips with a face, and which of
    the clips' sources the model trained on."""
    data_dir = Path(data_dir)
    with open(data_dir / VIDEOS_MANIFEST, newline="") as fh:
        rows = list(csv.DictReader(fh))
    clips = []
    for row in rows:
        result = detector.predict_video(data_dir / row["path"], fps=fps, max_frames=max_frames)
        clips.append({"path": row["path"], "label": row["label"], "source": row["source"], "score": result.score,
                      "tracks": len(result.tracks), "frames": result.info["frames_sampled"]})
    scored = [c for c in clips if c["score"] is not None]
    labels = np.array([c["label"] == "fake" for c in scored], dtype=int)
    both = 0 < labels.sum() < len(labels)
    seen = sorted({c["source"] for c in clips} & training_sources(data_dir))
    return {
        "auc": roc_auc(labels, np.array([c["score"] for c in scored])) if both else None,
        "n_real": int(len(labels) - labels.sum()), "n_fake": int(labels.sum()),
        "no_face": len(clips) - len(scored), "fps": fps, "max_frames": max_frames,
        "model": detector.spec.name, "runtime": detector.runtime,
        "sources_seen_in_training": seen,
        "held_out": not seen,
        "note": ("clips of sources whose images trained the model: a check of the video path, not a held-out "
                 "measure" if seen else "no clip's source trained the model"),
        "clips": clips,
        "measured": datetime.date.today().isoformat(),
    }
