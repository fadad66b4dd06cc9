"""Build and gate: the cached, checked INT8/FP32 artifact behind a zoo name on a target.

``ensure_artifact`` is what ``load()`` calls for a quantized name: it resolves the calibration
and gate faces (disjoint by source), builds the artifact once into the cache (atomic, locked
across processes), and returns it. A build that misses its gate is still cached, with the
numbers in its manifest; :func:`~deepfake_sdk.inference.cached.served` decides what a caller gets: a
:class:`ParityWarning` carrying them, or :class:`ParityGateError` under ``strict``. Each artifact
found or built here is recorded in the cheap index ``load()`` reads first (``inference/cached.py``).
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ..artifact import Artifact, build_lock
from ..inference.cached import remember
from ..models.composite import require_single_graph
from ..models.factory import create_model
from ..quantization import config_for
from ..quantization.calibration import BuildSets, build_sets
from ..verification.gates import Gate
from ..zoo import ModelSpec, get_spec
from .export import default_artifact_dir, export

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
    require_single_graph(spec, "build")
    recipe = config_for(spec.precision, target, **spec.int8_recipe_overrides(target))
    sets = build_sets(calibration, recipe.calibration_size, VERIFY_SIZE, spec.preprocessing, spec.weights_path) \
        if spec.precision == "int8" else None
    out = default_artifact_dir(spec, target, recipe, sets.calibration if sets else None, gate)
    with build_lock(out):
        if (out / "manifest.json").is_file():
            artifact = Artifact.load(out, expect_target=target)
        else:
            artifact = _build(spec, target, recipe, sets, out, progress, gate)
    if calibration is None:  # what load() looks up first next time, without making the crops
        remember(spec, target, gate, artifact)
    return artifact


def _build(spec: ModelSpec, target: str, recipe, sets: BuildSets | None, out: Path, progress: bool,
           gate: Gate | None) -> Artifact:
    with tqdm(total=2, desc=f"building {spec.name} for {target}", disable=not progress, unit="step") as bar:
        reference = create_model(get_spec(f"{spec.base_name}-fp32"))
        bar.update(1)
        artifact = export(reference, target, spec.precision, calibration=sets.calibration if sets else None,
                          out=out, quantization=recipe, spec=spec, verify_on=sets.gate if sets else None, gate=gate,
                          mixed_precision_steps=MIXED_PRECISION_STEPS)
        bar.update(1)
    return artifact
