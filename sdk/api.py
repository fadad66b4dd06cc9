"""The front door: ``load(name, target=None) -> Detector``."""
from __future__ import annotations

import os
from pathlib import Path

from .artifact import BUNDLE_KIND, Artifact
from .device import select_target
from .inference.cached import lookup, served
from .inference.detector import Detector, TorchBackend
from .models.composite import backend_for
from .models.factory import create_model
from .runtimes.base import require_runtime, runtime_class, runtime_for
from .verification.gates import Gate
from .zoo import ModelSpec, get_spec, recorded_drift


def load(name: str, target: str | None = None, calibration=None, progress: bool = True,
         strict: bool = False, gate: Gate | None = None, prefer: str = "throughput") -> Detector:
    """A ready detector for a zoo name (``gend-int8``, ``gend-fp32``) or an artifact folder.

    ``gend-fp32`` runs the PyTorch reference unless a ``target`` asks for an FP32 artifact.
    Quantized names pick the target for this device (see ``deepfake_sdk.device``); the artifact
    is built on first use into the cache, keyed by its recipe, and verified on every load.
    An INT8 build is checked against the float reference on this machine (the build gate,
    ``gate``); one that misses it is served with a :class:`ParityWarning` carrying the numbers,
    or refused with :class:`ParityGateError` when ``strict``. A cache hit reads the artifact
    recorded for the entry (``deepfake_sdk.inference.cached``): no crops are made and no build
    code is imported.
    ``prefer="first-answer"`` (a one-shot call, as the CLI's ``predict`` of a few images) lets the
    device choice trade a little steady speed for an earlier first answer (``device.select_target``).
    """
    if os.sep in name or Path(name).is_dir():
        artifact = Artifact.load(name)
        if artifact.manifest.get("kind") == BUNDLE_KIND:
            return _from_bundle(artifact, target)
        return _from_artifact(served(artifact, strict))
    spec = get_spec(name)
    if spec.precision == "fp32" and target in (None, "pytorch"):
        return Detector(spec, TorchBackend(create_model(spec)), "pytorch")
    selection = select_target(spec.precision, target, drifting=recorded_drift(spec), prefer=prefer)  # drift passed over
    require_runtime(selection.target)  # before a long build that could not run anyway
    opened: list[Artifact] = []

    def open_part(part: ModelSpec):
        artifact = served(_artifact(part, selection.target, calibration, progress, gate), strict)
        opened.append(artifact)
        return runtime_for(artifact)

    backend = backend_for(spec, open_part)  # the artifact, or a composite's parts' artifacts
    return Detector(spec, backend, backend.name, artifact=opened[0] if len(opened) == 1 else None)


def _artifact(spec: ModelSpec, target: str, calibration, progress: bool, gate: Gate | None) -> Artifact:
    """The recorded artifact when it is current (default calibration), else the build path's."""
    hit = lookup(spec, target, gate) if calibration is None else None
    if hit is not None:
        return hit
    from .building.build import ensure_artifact  # only on a miss: the build imports the exporters

    return ensure_artifact(spec, target, calibration=calibration, progress=progress, gate=gate)


def _from_bundle(artifact: Artifact, target: str | None) -> Detector:
    """An app bundle's model file scored by its runtime here: the first of the bundle's targets
    that runs on this machine, or ``target``."""
    from .bundles.writer import Bundle

    bundle = Bundle(artifact.path, artifact.manifest)
    targets = [target] if target else list(bundle.manifest["artifacts"])
    runnable = [t for t in targets if runtime_class(t).is_available()] or targets[:1]
    require_runtime(runnable[0])
    return _from_artifact(bundle.artifact(runnable[0]), get_spec(bundle.manifest["model"]["registered"]))


def _from_artifact(artifact: Artifact, spec: ModelSpec | None = None) -> Detector:
    runtime = runtime_for(artifact)
    if spec is None:
        spec = get_spec(f"{artifact.manifest['model']['name']}-{artifact.precision}")
    return Detector(spec, runtime, runtime.name, artifact=artifact)
