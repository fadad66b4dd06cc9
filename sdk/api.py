"""The front door: ``load(name, target=None) -> Detector``."""
from __future__ import annotations

import os
from pathlib import Path

from .artifact import Artifact
from .detector import Detector, TorchBackend
from .zoo import ModelSpec, get_spec


def load(name: str, target: str | None = None, calibration=None, progress: bool = True) -> Detector:
    """A ready detector for a zoo name (``gend-int8``, ``gend-fp32``) or an artifact folder.

    ``gend-fp32`` runs the PyTorch reference unless a ``target`` asks for an FP32 artifact.
    Quantized names pick the target for this device (see ``deepfake_sdk.device``); the artifact
    is built on first use into the cache, keyed by its recipe, and verified on every load.
    """
    if os.sep in name or Path(name).is_dir():
        return _from_artifact(Artifact.load(name))
    spec = get_spec(name)
    if spec.precision == "fp32" and target in (None, "pytorch"):
        from .models.factory import create_model

        return Detector(spec, TorchBackend(create_model(spec)), "pytorch")
    from .device import select_target

    selection = select_target(spec.precision, target)
    require_runtime(selection.target)  # before a long build that could not run anyway
    artifact = ensure_artifact(spec, selection.target, calibration=calibration, progress=progress)
    return _from_artifact(artifact, spec)


def require_runtime(target: str) -> None:
    from .runtimes.base import runtime_class

    if not runtime_class(target).is_available():
        import platform

        from .errors import MissingDependencyError
        from .targets import get_target

        if not get_target(target).predicts_on_linux and platform.system() != "Darwin":
            raise MissingDependencyError(
                f"{target!r} artifacts predict only on macOS/iOS; on {platform.system()} you can export "
                f"and validate them (deepfake-sdk export gend-int8 --target {target}) but not run them"
            )
        raise MissingDependencyError(
            f"the {target!r} runtime ({runtime_class(target).package}) is not installed here: "
            f"pip install 'deepfake-sdk[{get_target(target).extra}]'"
        )


def _from_artifact(artifact: Artifact, spec: ModelSpec | None = None) -> Detector:
    from .runtimes.base import runtime_for

    runtime = runtime_for(artifact)
    if spec is None:
        spec = get_spec(f"{artifact.manifest['model']['name']}-{artifact.precision}")
    return Detector(spec, runtime, runtime.name, artifact=artifact)


VERIFY_SIZE = 128  # crops an INT8 build must match the reference on (mixed precision if not)
MIXED_PRECISION_STEPS = 3  # re-exports with 2, 4, 8 of the most sensitive layers kept float


def ensure_artifact(spec: ModelSpec, target: str, calibration=None, progress: bool = True) -> Artifact:
    """The cached artifact for ``spec`` on ``target``; exported (atomically) when missing.

    INT8 builds are checked against the float reference on crops disjoint from calibration,
    and fall back to mixed precision when they drift (see ``quantization.sensitivity``).
    """
    from tqdm import tqdm

    from .export import default_artifact_dir, export
    from .models.factory import create_model
    from .quantization import config_for
    from .quantization.calibration import calibration_set

    recipe = config_for(spec.precision, target)
    calib = (calibration_set(calibration, recipe.calibration_size, spec.preprocessing)
             if spec.precision == "int8" else None)
    out = default_artifact_dir(spec, target, recipe, calib)
    if (out / "manifest.json").is_file():
        return Artifact.load(out, expect_target=target)
    with tqdm(total=2, desc=f"building {spec.name} for {target}", disable=not progress, unit="step") as bar:
        reference = create_model(get_spec(f"{spec.family}-fp32"))
        bar.update(1)
        verify = (calibration_set(calibration, VERIFY_SIZE, spec.preprocessing, offset=recipe.calibration_size).crops
                  if calib else None)
        artifact = export(reference, target, spec.precision, calibration=calib.crops if calib else None,
                          out=out, spec=spec, verify_on=verify, mixed_precision_steps=MIXED_PRECISION_STEPS)
        bar.update(1)
    return artifact
