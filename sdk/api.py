"""The front door: ``load(name, target=None) -> Detector``."""
from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path

from .artifact import Artifact, build_lock
from .detector import Detector, TorchBackend
from .errors import MissingDependencyError, ParityGateError, ParityWarning
from .targets import get_target
from .zoo import ModelSpec, get_spec


def load(name: str, target: str | None = None, calibration=None, progress: bool = True,
         strict: bool = False, gate=None) -> Detector:
    """A ready detector for a zoo name (``gend-int8``, ``gend-fp32``) or an artifact folder.

    ``gend-fp32`` runs the PyTorch reference unless a ``target`` asks for an FP32 artifact.
    Quantized names pick the target for this device (see ``deepfake_sdk.device``); the artifact
    is built on first use into the cache, keyed by its recipe, and verified on every load.
    An INT8 build is checked against the float reference on this machine (the build gate,
    ``gate``); one that misses it is served with a :class:`ParityWarning` carrying the numbers,
    or refused with :class:`ParityGateError` when ``strict``.
    """
    if os.sep in name or Path(name).is_dir():
        return _from_artifact(_gated(Artifact.load(name), strict))
    spec = get_spec(name)
    if spec.precision == "fp32" and target in (None, "pytorch"):
        from .models.factory import create_model

        return Detector(spec, TorchBackend(create_model(spec)), "pytorch")
    from .device import select_target

    selection = select_target(spec.precision, target)
    require_runtime(selection.target)  # before a long build that could not run anyway
    artifact = ensure_artifact(spec, selection.target, calibration=calibration, progress=progress, gate=gate)
    return _from_artifact(_gated(artifact, strict), spec)


def require_runtime(target: str) -> None:
    from .runtimes.base import runtime_class

    if runtime_class(target).is_available():
        return
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


def gate_failure(artifact: Artifact) -> str | None:
    """Why ``artifact`` missed its build gate (the numbers), or None when it passed or had none."""
    report = artifact.manifest.get("mixed_precision") or {}
    if report.get("passed", True):
        return None
    last = report["steps"][-1]
    where = (report.get("checked_on") or {}).get("cpu_class", "?")
    faces = (report.get("gate_faces") or {}).get("source", "?")
    return (f"{artifact.path.name} missed its build gate on this CPU ({where}): Pearson {last['pearson']:.4f}, "
            f"flips {last['flip_rate']:.2%}, max |dp| {last['max_abs_diff']:.3f} on {report.get('verified_on')} "
            f"gate faces ({faces}) with {len(report.get('float_layers', []))} layers kept float "
            f"(limits: {report['gate']})")


def _gated(artifact: Artifact, strict: bool) -> Artifact:
    failure = gate_failure(artifact)
    if failure and strict:
        raise ParityGateError(f"{failure}. Refusing it (strict=True): use an FP32 model, or export with "
                              "more layers float (deepfake-sdk export --mixed-precision N).")
    if failure:
        warnings.warn(ParityWarning(f"{failure}. Scores may differ from the float reference; "
                                    "pass strict=True to refuse such builds."), stacklevel=3)
    return artifact


VERIFY_SIZE = 128  # crops an INT8 build must match the reference on (mixed precision if not)
MIXED_PRECISION_STEPS = 3  # re-exports with 2, 4, 8 of the most sensitive layers kept float


def ensure_artifact(spec: ModelSpec, target: str, calibration=None, progress: bool = True, gate=None) -> Artifact:
    """The cached artifact for ``spec`` on ``target``; exported (atomically) when missing.

    Builds of one artifact are serialised across processes by a file lock beside it, so two
    processes asking at once end with one artifact; a build killed midway leaves only a
    temporary folder, which the next build removes. INT8 builds are checked against the float
    reference on gate faces disjoint from the calibration faces, and fall back to mixed
    precision when they drift (see ``quantization.sensitivity``).
    """
    from .export import default_artifact_dir
    from .quantization import config_for
    from .quantization.calibration import build_sets

    recipe = config_for(spec.precision, target)
    sets = build_sets(calibration, recipe.calibration_size, VERIFY_SIZE, spec.preprocessing, spec.weights) \
        if spec.precision == "int8" else None
    out = default_artifact_dir(spec, target, recipe, sets.calibration if sets else None, gate)
    with build_lock(out):
        if (out / "manifest.json").is_file():
            return Artifact.load(out, expect_target=target)
        return _build(spec, target, sets, out, progress, gate)


def _build(spec: ModelSpec, target: str, sets, out: Path, progress: bool, gate) -> Artifact:
    from tqdm import tqdm

    from .export import export
    from .models.factory import create_model

    with tqdm(total=2, desc=f"building {spec.name} for {target}", disable=not progress, unit="step") as bar:
        reference = create_model(get_spec(f"{spec.family}-fp32"))
        bar.update(1)
        artifact = export(reference, target, spec.precision, calibration=sets.calibration if sets else None,
                          out=out, spec=spec, verify_on=sets.gate if sets else None, gate=gate,
                          mixed_precision_steps=MIXED_PRECISION_STEPS)
        bar.update(1)
    return artifact
