"""``export``: one verb from a PyTorch reference to a verified-on-load artifact folder."""
from __future__ import annotations

import datetime
import importlib
import json
from pathlib import Path

from . import __version__
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
) -> Artifact:
    """Export ``model`` (a GenD reference) for ``target`` at ``precision``; returns the Artifact.

    ``calibration``: a data folder with ``manifest.csv``, an ``(N, H, W, 3)`` uint8 array of
    aligned crops, or None (``$DEEPFAKE_SDK_DATA``, else the packaged face). ``quantization``
    overrides the precision's default recipe (e.g. ``Int8Config(per_channel=False)``).
    """
    from deepfake_sdk.quantization import config_for
    from deepfake_sdk.quantization.calibration import calibration_set

    spec = get_spec(spec) if isinstance(spec, str) else spec
    tgt = get_target(target)
    recipe = quantization or config_for(precision)
    if recipe.precision != precision:
        raise ValueError(f"quantization config is for {recipe.precision}, not {precision}")
    if precision not in tgt.precisions:
        raise ValueError(f"target {target!r} writes {', '.join(tgt.precisions)}, not {precision!r}")
    calib = None
    if precision == "int8":
        calib = calibration_set(calibration, recipe.calibration_size, spec.preprocessing)
    out = Path(out) if out else default_artifact_dir(spec, target, recipe, calib)
    converter = importlib.import_module(f"deepfake_sdk.converters.{tgt.converter}")
    from .errors import MissingDependencyError
    from .converters.base import ExportRequest

    with atomic_path(out, is_dir=True) as tmp:
        request = ExportRequest(
            model=model.eval(),
            precision=precision,
            quantization=recipe,
            calibration=to_batch(calib.crops, spec.preprocessing) if calib else None,
            input_size=spec.preprocessing.size,
            out_dir=tmp,
        )
        try:
            result = converter.export(request)
        except ImportError as exc:
            raise MissingDependencyError(
                f"exporting to {target!r} needs {exc.name or 'a package that is missing'}: "
                f"pip install 'deepfake-sdk[{tgt.extra}]'"
            ) from exc
        write_manifest(tmp, _manifest(spec, tgt.name, precision, recipe, calib, result))
    return Artifact.load(out)


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


def recipe_key(spec: ModelSpec, target: str, recipe, calib) -> str:
    """What an artifact depends on: model, weights, target, recipe, calibration, SDK version."""
    import hashlib

    from .paths import package_weights_dir

    weights = package_weights_dir() / spec.weights if spec.weights else None
    parts = {
        "model": spec.family, "version": spec.version, "target": target, "recipe": recipe.key(),
        "calibration": calib.sha256 if calib is not None else None, "sdk": __version__,
        "weights": sha256_file(weights) if weights and weights.exists() else None,
        "preprocessing": spec.preprocessing.to_dict(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def default_artifact_dir(spec: ModelSpec, target: str, recipe, calib) -> Path:
    from .paths import cache_dir

    key = recipe_key(spec, target, recipe, calib)
    return cache_dir() / "artifacts" / f"{spec.family}-{recipe.precision}-{target}-{key}"

