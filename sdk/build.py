"""Build and gate: the cached, checked INT8/FP32 artifact behind a zoo name on a target.

``ensure_artifact`` is what ``load()`` calls for a quantized name: it resolves the calibration
and gate faces (disjoint by source), builds the artifact once into the cache (atomic, locked
across processes), and returns it. A build that misses its gate is still cached, with the
numbers in its manifest; :func:`served` decides what a caller gets: a :class:`ParityWarning`
carrying them, or :class:`ParityGateError` under ``strict``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from tqdm import tqdm

from .artifact import Artifact, build_lock
from .errors import ParityGateError, ParityWarning, UsageError
from .export import default_artifact_dir, export
from .gates import Gate
from .models.factory import create_model
from .quantization import config_for
from .quantization.calibration import BuildSets, build_sets
from .zoo import ModelSpec, get_spec

VERIFY_SIZE = 128  # crops an INT8 build must match the reference on (mixed precision if not)
MIXED_PRECISION_STEPS = 3  # re-exports with 2, 4, 8 of the most sensitive layers kept float


def ensure_artifact(spec: ModelSpec, target: str, calibration=None, progress: bool = True,
                    gate: Gate | None = None) -> Artifact:
    """The cached artifact for ``spec`` on ``target``; exported (atomically) when missing.

    Builds of one artifact are serialised across processes by a file lock beside it, so two
    processes asking at once end with one artifact; a build killed midway leaves only a
    temporary folder, which the next build removes. INT8 builds are checked against the float
    reference on gate faces disjoint from the calibration faces, and fall back to mixed
    precision when they drift.
    """
    if spec.members:
        raise UsageError(f"{spec.name} has no artifact of its own: it runs its members' artifacts "
                         f"({', '.join(m.name for m in spec.member_specs())}); build or export those")
    recipe = config_for(spec.precision, target, **spec.int8_recipe_overrides(target))
    sets = build_sets(calibration, recipe.calibration_size, VERIFY_SIZE, spec.preprocessing, spec.weights_path) \
        if spec.precision == "int8" else None
    out = default_artifact_dir(spec, target, recipe, sets.calibration if sets else None, gate)
    with build_lock(out):
        if (out / "manifest.json").is_file():
            return Artifact.load(out, expect_target=target)
        return _build(spec, target, sets, out, progress, gate)


def _build(spec: ModelSpec, target: str, sets: BuildSets | None, out: Path, progress: bool,
           gate: Gate | None) -> Artifact:
    with tqdm(total=2, desc=f"building {spec.name} for {target}", disable=not progress, unit="step") as bar:
        reference = create_model(get_spec(f"{spec.base_name}-fp32"))
        bar.update(1)
        artifact = export(reference, target, spec.precision, calibration=sets.calibration if sets else None,
                          out=out, spec=spec, verify_on=sets.gate if sets else None, gate=gate,
                          mixed_precision_steps=MIXED_PRECISION_STEPS)
        bar.update(1)
    return artifact


def gate_failure(artifact: Artifact) -> str | None:
    """Why ``artifact`` missed its build gate (the numbers), or None when it passed or had none."""
    report = artifact.manifest.get("mixed_precision") or {}
    if report.get("passed", True):
        return None
    last = report["steps"][-1]
    where = (report.get("checked_on") or {}).get("cpu_class", "?")
    faces = (report.get("gate_faces") or {}).get("source", "?")
    limits = {k: v for k, v in report["gate"].items() if v is not None}
    return (f"{artifact.path.name} missed its build gate on this CPU ({where}): Pearson {last['pearson']:.4f}, "
            f"flips {last['flip_rate']:.2%}, max |dp| {last['max_abs_diff']:.3f} on {report.get('verified_on')} "
            f"gate faces ({faces}) with {len(report.get('float_layers', []))} layers kept float "
            f"(limits: {limits})")


def served(artifact: Artifact, strict: bool) -> Artifact:
    """``artifact`` if it passed its build gate; else a loud warning, or refusal under ``strict``."""
    failure = gate_failure(artifact)
    if failure and strict:
        raise ParityGateError(f"{failure}. Refusing it (strict=True): use an FP32 model, or export with "
                              "more layers float (deepfake-sdk export --mixed-precision N).")
    if failure:
        warnings.warn(ParityWarning(f"{failure}. Scores may differ from the float reference; "
                                    "pass strict=True to refuse such builds."), stacklevel=3)
    return artifact
