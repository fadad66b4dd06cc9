"""Recorded calibration: what an INT8 recipe learns from faces, measured once on real data and
shipped beside the trained tensors, so every machine builds the same artifact, data or not.

With activations quantized at run time on every servable target (docs/targets.md), the only
face statistics a build uses are SmoothQuant's per-channel activation maxima. They are recorded
by ``deepfake-sdk calibration record gend-fp32 --data ../shared/data`` from that folder's sources,
minus the packaged photo's own source (its augmentations are the gate faces of a build without
data, so gate and calibration never share a face), into ``<weights>.calib.safetensors``. The
file names the weights it was measured on; a profile for other weights is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..artifact import atomic_path, sha256_file
from ..converters.base import deployable
from ..models.factory import create_model
from ..preprocess import to_batch
from ..training.data import spread_over_sources
from ..zoo import ModelSpec, get_spec
from .smooth import activation_maxima

PROFILE_SUFFIX = ".calib.safetensors"
# Sources of ../shared/data that hold the packaged gate photo (NASA's astronaut, via scikit-image).
PACKAGED_PHOTO_SOURCES = ("pkg_skimage",)
RECORD_SIZE = 256


@dataclass(frozen=True)
class CalibrationProfile:
    maxima: dict[str, torch.Tensor]  # LayerNorm module name -> per-channel max |output|
    meta: dict[str, str]  # source, crops, sources, weights_sha256, command
    path: Path

    def describe(self) -> dict:
        return {"file": self.path.name, "source": self.meta.get("source", ""),
                "crops": int(self.meta.get("crops", 0)), "sources": self.meta.get("sources", "").split(",")}


def profile_path(weights: Path | None) -> Path | None:
    """``gend_x.safetensors`` -> ``gend_x.calib.safetensors`` beside it."""
    return weights.with_name(f"{weights.name.rsplit('.', 1)[0]}{PROFILE_SUFFIX}") if weights else None


def load_profile(weights: Path | None) -> CalibrationProfile | None:
    """The recorded profile of these trained weights, or None (none shipped, or stale)."""
    path = profile_path(weights)
    if path is None or not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        maxima = {k: fh.get_tensor(k) for k in fh.keys()}
    if meta.get("weights_sha256") != sha256_file(weights):
        return None  # recorded on other weights (retrained since): measure again
    return CalibrationProfile(maxima, meta, path)


def record_profile(spec: ModelSpec, data_dir: Path, size: int = RECORD_SIZE, out: Path | None = None) -> Path:
    """Measure SmoothQuant's maxima for ``spec`` on ``data_dir`` and write the profile file."""
    crops = spread_over_sources(data_dir, spec.preprocessing, exclude=PACKAGED_PHOTO_SOURCES)
    picked = crops.images[crops.order[:size]]
    sources = sorted({crops.samples[i].source for i in crops.order[:size]})
    model = deployable(create_model(get_spec(f"{spec.base_name}-fp32")), spec.preprocessing.size)
    maxima = activation_maxima(model, to_batch(picked, spec.preprocessing))
    meta = {"source": f"data:{Path(data_dir).name}:manifest.csv:{crops.manifest_sha256[:16]}",
            "crops": str(len(picked)), "sources": ",".join(sources),
            "excluded_sources": ",".join(PACKAGED_PHOTO_SOURCES),
            "weights_sha256": sha256_file(spec.weights_path),
            "command": f"deepfake-sdk calibration record {spec.base_name}-fp32 --data {data_dir}"}
    dest = out or profile_path(spec.weights_path)
    with atomic_path(dest) as tmp:
        save_file({k: v.contiguous() for k, v in maxima.items()}, str(tmp), metadata=meta)
    return dest
