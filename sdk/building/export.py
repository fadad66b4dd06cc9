"""``export``: one verb from a PyTorch reference to a verified-on-load artifact folder.

An INT8 export given gate faces (``verify_on``) is checked against the float reference on
them with the :class:`~deepfake_sdk.verification.gates.Gate`; when it misses, the most sensitive layers (the
converter's ``layer_sensitivity`` ranking) are kept float, 2, 4, 8, ... of them, until it passes
or the step budget runs out. The manifest records every step and what stayed float.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..artifact import Artifact, atomic_path, sha256_file, write_manifest
from ..converters import converter_for
from ..converters.base import Converter, ExportRequest, deployable
from ..device import device_info
from ..errors import MissingDependencyError, UsageError
from ..metrics import softmax_fake
from ..models.composite import require_single_graph
from ..models.contract import DetectorModel
from ..paths import cache_dir
from ..preprocess import to_batch
from ..quantization import config_for
from ..quantization.config import require_scheme
from ..quantization.calibration import CalibrationSet, calibration_set
from ..quantization.smooth import smooth
from ..runtimes.base import runtime_class, runtime_for
from ..targets import Target, get_target
from ..verification.gates import Gate, compare
from ..zoo import ModelSpec, get_spec


def export(
    model: DetectorModel,
    target: str,
    precision: str = "int8",
    calibration=None,
    out: str | Path | None = None,
    quantization=None,
    spec: ModelSpec | str | None = None,
    verify_on=None,
    gate: Gate | None = None,
    mixed_precision_steps: int = 0,
) -> Artifact:
    """Export ``model`` (a family's reference) for ``target`` at ``precision``; returns the Artifact.

    ``calibration``: a data folder with ``manifest.csv``, an ``(N, H, W, 3)`` uint8 array of
    aligned crops, a ``CalibrationSet``, or None: the recipe's recorded profile with the packaged
    face, the same on every machine (``quantization.calibration``). ``quantization``
    overrides the precision's default recipe (e.g. ``Int8Config(per_channel=False)``).
    ``verify_on``: a ``CalibrationSet`` (or aligned uint8 crops) of gate faces on which an INT8
    export is compared with the float reference (``gate``, default ``Gate.build()``); the result
    is stored in the manifest. With ``mixed_precision_steps`` > 0, a failing export is redone
    with its most sensitive layers kept float, up to that many times. ``spec``: the zoo entry
    whose preprocessing, threshold and calibration profile the artifact carries; by default the
    one ``model`` was created from (``create_model``).
    """
    spec = _spec_of(model, spec)
    require_single_graph(spec, "export")
    tgt = get_target(target)
    recipe = quantization or config_for(precision, target, **spec.int8_recipe_overrides(target))
    if recipe.precision != precision:
        raise UsageError(f"quantization config is for {recipe.precision}, not {precision}")
    if precision not in tgt.precisions:
        raise UsageError(f"target {target!r} writes {', '.join(tgt.precisions)}, not {precision!r}")
    if precision == "int8":
        require_scheme(target, recipe.activations)
    calib = None
    if precision == "int8":
        calib = calibration if isinstance(calibration, CalibrationSet) else \
            calibration_set(calibration, recipe.calibration_size, spec.preprocessing, spec.weights_path)
    out = Path(out) if out else default_artifact_dir(spec, target, recipe, calib, gate)
    model = deployable(model, spec.preprocessing.size)
    if precision == "int8" and getattr(recipe, "smoothquant_alpha", None):
        smooth(model, to_batch(calib.crops, spec.preprocessing), recipe.smoothquant_alpha, maxima=calib.smooth_maxima)
    job = _Job(model, spec, tgt, precision, calib)
    if verify_on is None or precision != "int8":
        return job.write(job.with_floor(recipe), out)
    return job.write_with_parity(recipe, out, verify_on, gate or Gate.build(), mixed_precision_steps)


def _spec_of(model: DetectorModel, spec: ModelSpec | str | None) -> ModelSpec:
    if spec is None:
        spec = getattr(model, "zoo_spec", None)
        if spec is None:
            raise UsageError("export() needs the zoo entry this model implements (its preprocessing, threshold and "
                             "calibration go into the artifact): build it with create_model(name) or pass spec=")
    return get_spec(spec) if isinstance(spec, str) else spec


@dataclass
class _Job:
    model: DetectorModel  # fixed to the input size and smoothed: what every converter receives
    spec: ModelSpec
    target: Target
    precision: str
    calib: CalibrationSet | None

    def converter(self) -> Converter:
        return converter_for(self.target.name)

    def write(self, recipe, out: Path, extra: dict | None = None) -> Artifact:
        converter = self.converter()
        pp = self.spec.preprocessing
        with atomic_path(out, is_dir=True) as tmp:
            request = ExportRequest(self.model, self.precision, recipe,
                                    to_batch(self.calib.crops, pp) if self.calib else None, pp.size, tmp)
            try:
                result = converter.export(request)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"exporting to {self.target.name!r} needs {exc.name or 'a package that is missing'}: "
                    f"pip install 'deepfake-sdk[{self.target.extra}]'") from exc
            manifest = _manifest(self.spec, self.target.name, self.precision, recipe, self.calib, result)
            write_manifest(tmp, {**manifest, **(extra or {})})
        return Artifact.load(out)

    def sensitivity(self, recipe, artifact: Artifact | None = None) -> dict[str, float]:
        """The converter's per-layer SQNR ranking input (lower = more damaged); ``artifact`` is
        None before anything is exported, which rankings on the float model do not need."""
        converter = self.converter()
        if converter.layer_sensitivity is None:
            return {}
        crops = to_batch(self.calib.crops[:16], self.spec.preprocessing)
        return converter.layer_sensitivity(artifact.path if artifact else None, crops, self.model, recipe)

    def with_floor(self, recipe):
        """``recipe`` with its ``min_float_layers`` most sensitive layers kept float (ungated builds)."""
        floor = getattr(recipe, "min_float_layers", 0)
        if not floor or recipe.float_layers:
            return recipe
        return dataclasses.replace(recipe, float_layers=tuple(most_sensitive(self.sensitivity(recipe))[:floor]))

    def write_with_parity(self, recipe, out: Path, faces, gate: Gate, steps: int) -> Artifact:
        """INT8 export that must match the float reference on ``faces``, else mixed precision."""
        if not runtime_class(self.target.name).is_available():  # nothing to score with: skip the reference too
            return self.write(self.with_floor(recipe), out, {"mixed_precision": {"skipped": "runtime not available here"}})
        faces = faces if isinstance(faces, CalibrationSet) else CalibrationSet(np.asarray(faces), "array", ("array:gate",))
        batch = to_batch(faces.crops, self.spec.preprocessing)
        reference = score_batches(lambda b: torch_logits(self.model, b), batch)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{Path(out).name}.mp-", dir=Path(out).parent))
        counter = iter(range(1000))

        def export_with(float_layers: tuple[str, ...]) -> Artifact:
            return self.write(dataclasses.replace(recipe, float_layers=float_layers), work / f"step{next(counter)}")

        try:
            best, report = search_float_layers(export_with, lambda a: score_batches(runtime_for(a).run, batch),
                                               lambda a: self.sensitivity(recipe, a), reference, gate,
                                               self.spec.threshold, steps, floor=recipe.min_float_layers)
            report["verified_on"] = int(len(faces.crops))
            report["gate_faces"] = {**faces.describe(), "shared_sources_with_calibration":
                                    sorted(set(faces.sources) & set(self.calib.faces_used() if self.calib else ()))}
            report["checked_on"] = {**device_info().describe(), "runtime": runtime_class(self.target.name).version()}
            report["near_threshold"] = near_threshold(reference, self.spec.threshold)
            return _adopt(best, out, {"mixed_precision": report})
        finally:
            shutil.rmtree(work, ignore_errors=True)


def search_float_layers(
    export_with: Callable[[tuple[str, ...]], Artifact],
    score: Callable[[Artifact], np.ndarray],
    sensitivity: Callable[[Artifact | None], dict[str, float]],
    reference: np.ndarray,
    gate: Gate,
    threshold: float = 0.5,
    max_steps: int = 4,
    floor: int = 0,
) -> tuple[Artifact, dict]:
    """Returns ``(artifact, report)``; ``report`` has every step's parity and the float layers.
    Steps: everything INT8 (with a ``floor``, its ``floor`` most sensitive layers float, ranked
    before the first export: ``sensitivity(None)``); if the gate fails, rank layers once
    (lowest SQNR first) and re-export with the worst 2, 4, 8, ... kept float."""
    ranked = most_sensitive(sensitivity(None)) if floor else []
    k = min(len(ranked), floor)
    artifact = export_with(tuple(ranked[:k]))
    step = _step(reference, score(artifact), gate, threshold, k)
    history = [step]
    for _ in range(max_steps):
        if step["passed"]:
            break
        if not ranked:
            ranked = most_sensitive(sensitivity(artifact))
        k = min(len(ranked), max(2, 2 * k))
        artifact = export_with(tuple(ranked[:k]))
        step = _step(reference, score(artifact), gate, threshold, k)
        history.append(step)
        if k == len(ranked):
            break
    report = {"gate": gate.to_dict(), "threshold": threshold, "passed": step["passed"], "floor": floor,
              "float_layers": ranked[:k] if k else [], "steps": history}
    return artifact, report


def most_sensitive(sqnr_db: dict[str, float]) -> list[str]:
    """Layer names, most damaged by INT8 (lowest SQNR) first."""
    return [name for name, _ in sorted(sqnr_db.items(), key=lambda kv: kv[1])]


def _step(reference: np.ndarray, candidate: np.ndarray, gate: Gate, threshold: float, float_layers: int) -> dict:
    m = compare(reference, candidate, None, threshold)
    return {"float_layers": float_layers, "pearson": round(m.pearson, 5), "flip_rate": round(m.flip_rate, 5),
            "flips": m.flips, "max_abs_diff": round(m.max_abs_diff, 5), "passed": gate.passes(m)}


def near_threshold(scores: np.ndarray, threshold: float, band: float = 0.05) -> dict:
    """How many reference scores lie within ``band`` of the threshold: the faces a tiny INT8
    error can flip, which is what a flip rate on this gate set mostly measures."""
    return {"band": band, "count": int(np.sum(np.abs(scores - threshold) <= band)), "of": int(len(scores))}


def _adopt(candidate: Artifact, out: Path, extra: dict) -> Artifact:
    """Move a finished candidate artifact to ``out``, recording ``extra`` in its manifest."""
    manifest = {**candidate.manifest, **extra}
    manifest["recipe"] = {**manifest["recipe"], "float_layers": extra["mixed_precision"]["float_layers"]}
    write_manifest(candidate.path, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(candidate.path, out)
    return Artifact.load(out)


def torch_logits(model: DetectorModel, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(batch)).numpy()


def score_batches(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, size: int = 32) -> np.ndarray:
    """P(fake) of a preprocessed batch, ``size`` faces per call of ``run`` (logits)."""
    return np.concatenate([softmax_fake(np.asarray(run(batch[i : i + size]))) for i in range(0, len(batch), size)])


def _manifest(spec: ModelSpec, target: str, precision: str, recipe, calib, result) -> dict:
    size = spec.preprocessing.size
    return {
        "sdk_version": __version__,
        "model": {"name": spec.base_name, "version": spec.version, "arch": spec.family, "backbone": spec.backbone},
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
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def exporter_fingerprint(target: str) -> str:
    """SHA-256 of the code that writes ``target``'s artifacts (its converter, the shared converter
    base, the quantization package): a cached artifact built by other exporter code is rebuilt,
    even within one SDK version (a stale cache once served a float "INT8" build)."""
    converters = Path(importlib.util.find_spec("deepfake_sdk.converters").origin).parent
    quantization = Path(importlib.util.find_spec("deepfake_sdk.quantization").origin).parent
    files = [converters / f"{get_target(target).converter}.py", converters / "base.py",
             *sorted(quantization.glob("*.py"))]
    digest = hashlib.sha256()
    for file in files:
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def model_code_fingerprint() -> str:
    """SHA-256 of the model code (every family, backbone and layer under ``deepfake_sdk.models``):
    the same weights traced from other code give another graph (an EfficientNet pad moved into
    its conv halved LiteRT's INT8 layout ops), so an artifact from older model code is rebuilt."""
    models = Path(importlib.util.find_spec("deepfake_sdk.models").origin).parent
    digest = hashlib.sha256()
    for file in sorted(models.rglob("*.py")):
        digest.update(file.relative_to(models).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def recipe_key(spec: ModelSpec, target: str, recipe, calib, gate: Gate | None = None) -> str:
    """What an artifact depends on: model, weights, target, recipe, calibration, build gate, SDK,
    the exporter code and the model code."""
    weights = spec.weights_path
    parts = {
        "model": spec.base_name, "version": spec.version, "target": target, "recipe": recipe.key(),
        "calibration": calib.sha256 if calib is not None else None, "sdk": __version__,
        "exporter": exporter_fingerprint(target), "model_code": model_code_fingerprint(),
        "weights": sha256_file(weights) if weights and weights.exists() else None,
        "preprocessing": spec.preprocessing.to_dict(),
    }
    if gate is not None:
        parts["gate"] = gate.to_dict()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def default_artifact_dir(spec: ModelSpec, target: str, recipe, calib, gate: Gate | None = None) -> Path:
    key = recipe_key(spec, target, recipe, calib, gate)
    return cache_dir() / "artifacts" / f"{spec.base_name}-{recipe.precision}-{target}-{key}"
