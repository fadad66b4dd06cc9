"""``export``: one verb from a PyTorch reference to a verified-on-load artifact folder."""
from __future__ import annotations

import datetime
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UsageError
from .artifact import Artifact, atomic_path, sha256_file, write_manifest
from .preprocess import to_batch
from .targets import get_target
from .zoo import ModelSpec, get_spec


def export(
    model,
    target: str,
    precision: str = "int8",
    calibration=None,
    out: str | Path | None = None,
    quantization=None,
    spec: ModelSpec | str = "gend-fp32",
    verify_on=None,
    gate=None,
    mixed_precision_steps: int = 0,
) -> Artifact:
    """Export ``model`` (a GenD reference) for ``target`` at ``precision``; returns the Artifact.

    ``calibration``: a data folder with ``manifest.csv``, an ``(N, H, W, 3)`` uint8 array of
    aligned crops, a ``CalibrationSet``, or None: the recipe's recorded profile with the packaged
    face, the same on every machine (``quantization.calibration``). ``quantization``
    overrides the precision's default recipe (e.g. ``Int8Config(per_channel=False)``).
    ``verify_on``: a ``CalibrationSet`` (or aligned uint8 crops) of gate faces on which an INT8 export is compared with the float
    reference (``gate``, default ``ParityGate()``); the result is stored in the manifest. With
    ``mixed_precision_steps`` > 0, a failing export is redone with its most sensitive layers kept
    float, up to that many times (every target; the ranking is the converter's ``layer_sensitivity``).
    """
    from deepfake_sdk.quantization import config_for
    from deepfake_sdk.quantization.calibration import CalibrationSet, calibration_set

    spec = get_spec(spec) if isinstance(spec, str) else spec
    tgt = get_target(target)
    recipe = quantization or config_for(precision, target)
    if recipe.precision != precision:
        raise UsageError(f"quantization config is for {recipe.precision}, not {precision}")
    if precision not in tgt.precisions:
        raise UsageError(f"target {target!r} writes {', '.join(tgt.precisions)}, not {precision!r}")
    calib = None
    if precision == "int8":
        calib = calibration if isinstance(calibration, CalibrationSet) else \
            calibration_set(calibration, recipe.calibration_size, spec.preprocessing, spec.weights)
    out = Path(out) if out else default_artifact_dir(spec, target, recipe, calib, gate)
    from .converters.base import deployable

    model = deployable(model, spec.preprocessing.size)
    if precision == "int8" and getattr(recipe, "smoothquant_alpha", None):
        from deepfake_sdk.quantization.smooth import smooth

        smooth(model, to_batch(calib.crops, spec.preprocessing), recipe.smoothquant_alpha, maxima=calib.smooth_maxima)
    job = _Job(model, spec, tgt, precision, calib)
    if verify_on is None or precision != "int8":
        return job.write(recipe, out)
    return job.write_with_parity(recipe, out, verify_on, model, gate, mixed_precision_steps)


@dataclass
class _Job:
    model: object
    spec: ModelSpec
    target: object
    precision: str
    calib: object

    def write(self, recipe, out: Path, extra: dict | None = None) -> Artifact:
        from .converters.base import ExportRequest
        from .errors import MissingDependencyError

        converter = importlib.import_module(f"deepfake_sdk.converters.{self.target.converter}")
        pp = self.spec.preprocessing
        with atomic_path(out, is_dir=True) as tmp:
            request = ExportRequest(self.model, self.precision, recipe,
                                    to_batch(self.calib.crops, pp) if self.calib else None, pp.size, tmp)
            try:
                result = converter.export(request)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"exporting to {self.target.name!r} needs {exc.name or 'a package that is missing'}: "
                    f"pip install 'deepfake-sdk[{self.target.extra}]'"
                ) from exc
            manifest = _manifest(self.spec, self.target.name, self.precision, recipe, self.calib, result)
            write_manifest(tmp, {**manifest, **(extra or {})})
        return Artifact.load(out)

    def write_with_parity(self, recipe, out: Path, crops: np.ndarray, reference_model, gate, steps: int) -> Artifact:
        """INT8 export that must match the float reference on ``crops``, else mixed precision."""
        import dataclasses
        import tempfile

        from .quantization.sensitivity import ParityGate, search_float_layers
        from .runtimes.base import runtime_class, runtime_for

        if not runtime_class(self.target.name).is_available():  # nothing to score with: skip the reference too
            return self.write(recipe, out, {"mixed_precision": {"skipped": "runtime not available here"}})
        from .device import device_info
        from .quantization.calibration import CalibrationSet

        gate = gate or ParityGate(threshold=self.spec.threshold)
        faces = crops if isinstance(crops, CalibrationSet) else CalibrationSet(np.asarray(crops), "array", ("array:gate",))
        crops = faces.crops
        batch = to_batch(crops, self.spec.preprocessing)
        reference = _score(lambda b: _torch_logits(reference_model, b), batch)
        converter = importlib.import_module(f"deepfake_sdk.converters.{self.target.converter}")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{Path(out).name}.mp-", dir=Path(out).parent))
        counter = iter(range(1000))

        def export_with(float_layers: tuple[str, ...]) -> Artifact:
            return self.write(dataclasses.replace(recipe, float_layers=float_layers), work / f"step{next(counter)}")

        def score(artifact: Artifact) -> np.ndarray:
            runtime = runtime_for(artifact)
            return _score(runtime.run, batch)

        def sensitivity(artifact: Artifact) -> dict[str, float]:
            if not hasattr(converter, "layer_sensitivity"):
                return {}
            crops = to_batch(self.calib.crops[:16], self.spec.preprocessing)
            return converter.layer_sensitivity(artifact.path, crops, self.model, recipe)

        try:
            best, report = search_float_layers(export_with, score, sensitivity, reference, None, gate, steps)
            report["verified_on"] = int(len(crops))
            report["gate_faces"] = {**faces.describe(), "shared_sources_with_calibration":
                                    sorted(set(faces.sources) & set(self.calib.faces_used() if self.calib else ()))}
            report["checked_on"] = {**device_info().describe(), "runtime": runtime_class(self.target.name).version()}
            report["near_threshold"] = _near_threshold(reference, gate.threshold)
            return _adopt(best, out, {"mixed_precision": report})
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def _near_threshold(scores: np.ndarray, threshold: float, band: float = 0.05) -> dict:
    """How many reference scores lie within ``band`` of the threshold: the faces a tiny INT8
    error can flip, which is what a flip rate on this gate set mostly measures."""
    return {"band": band, "count": int(np.sum(np.abs(scores - threshold) <= band)), "of": int(len(scores))}


def _adopt(candidate: Artifact, out: Path, extra: dict) -> Artifact:
    """Move a finished candidate artifact to ``out``, recording ``extra`` in its manifest."""
    import os
    import shutil

    manifest = {**candidate.manifest, **extra}
    manifest["recipe"] = {**manifest["recipe"], "float_layers": extra["mixed_precision"]["float_layers"]}
    write_manifest(candidate.path, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(candidate.path, out)
    return Artifact.load(out)


def _torch_logits(model, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.eval()(torch.from_numpy(batch)).numpy()


def _score(run, batch: np.ndarray, size: int = 32) -> np.ndarray:
    from .detector import _softmax_fake

    return np.concatenate([_softmax_fake(np.asarray(run(batch[i : i + size]))) for i in range(0, len(batch), size)])


def _manifest(spec: ModelSpec, target: str, precision: str, recipe, calib, result) -> dict:
    size = spec.preprocessing.size
    return {
        "sdk_version": __version__,
        "model": {"name": spec.family, "version": spec.version, "arch": spec.arch, "backbone": spec.backbone},
        "target": target,
        "precision": precision,
        "recipe": {"name": type(recipe).__name__, "key": recipe.key(), **_fields(recipe)},
        "model_file": result.model_file,
        "input": {"name": "pixels", "shape": ["batch", 3, size, size], "dtype": "float32", "layout": "NCHW"},
        "outputs": {"logits": ["batch", 2], "features": ["batch", "dim"]},
        "classes": ["real", "fake"],
        "preprocessing": spec.preprocessing.to_dict(),
        "threshold": spec.threshold,
        "calibration": calib.describe() if calib else None,
        "tools": result.tools,
        "quantization": result.details,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parity": None,
    }


def _fields(recipe) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(recipe)))


def recipe_key(spec: ModelSpec, target: str, recipe, calib, gate=None) -> str:
    """What an artifact depends on: model, weights, target, recipe, calibration, build gate, SDK."""
    import hashlib

    from .paths import package_weights_dir

    weights = package_weights_dir() / spec.weights if spec.weights else None
    parts = {
        "model": spec.family, "version": spec.version, "target": target, "recipe": recipe.key(),
        "calibration": calib.sha256 if calib is not None else None, "sdk": __version__,
        "weights": sha256_file(weights) if weights and weights.exists() else None,
        "preprocessing": spec.preprocessing.to_dict(),
    }
    if gate is not None:
        from dataclasses import asdict

        parts["gate"] = asdict(gate)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def default_artifact_dir(spec: ModelSpec, target: str, recipe, calib, gate=None) -> Path:
    from .paths import cache_dir

    key = recipe_key(spec, target, recipe, calib, gate)
    return cache_dir() / "artifacts" / f"{spec.family}-{recipe.precision}-{target}-{key}"

