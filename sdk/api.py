"""The front door: ``load(name, target=None) -> Detector``."""
from __future__ import annotations

import os
from pathlib import Path

from .artifact import Artifact
from .build import ensure_artifact, served
from .bundles.writer import BUNDLE_KIND, Bundle
from .detector import Detector, MembersBackend, TorchBackend
from .device import select_target
from .gates import Gate
from .models.factory import create_model
from .models.fused.model import adapters_for, fusion_rule
from .runtimes.base import require_runtime, runtime_class, runtime_for
from .zoo import ModelSpec, get_spec, recorded_drift


def load(name: str, target: str | None = None, calibration=None, progress: bool = True,
         strict: bool = False, gate: Gate | None = None) -> Detector:
    """A ready detector for a zoo name (``gend-int8``, ``gend-fp32``) or an artifact folder.

    ``gend-fp32`` runs the PyTorch reference unless a ``target`` asks for an FP32 artifact.
    Quantized names pick the target for this device (see ``deepfake_sdk.device``); the artifact
    is built on first use into the cache, keyed by its recipe, and verified on every load.
    An INT8 build is checked against the float reference on this machine (the build gate,
    ``gate``); one that misses it is served with a :class:`ParityWarning` carrying the numbers,
    or refused with :class:`ParityGateError` when ``strict``.
    """
    if os.sep in name or Path(name).is_dir():
        artifact = Artifact.load(name)
        if artifact.manifest.get("kind") == BUNDLE_KIND:
            return _from_bundle(Bundle(artifact.path, artifact.manifest), target)
        return _from_artifact(served(artifact, strict))
    spec = get_spec(name)
    if spec.precision == "fp32" and target in (None, "pytorch"):
        return Detector(spec, TorchBackend(create_model(spec)), "pytorch")
    selection = select_target(spec.precision, target, drifting=recorded_drift(spec))  # measured drift passed over
    require_runtime(selection.target)  # before a long build that could not run anyway
    if spec.members:
        return _fused(spec, selection.target, calibration, progress, strict, gate)
    artifact = ensure_artifact(spec, selection.target, calibration=calibration, progress=progress, gate=gate)
    return _from_artifact(served(artifact, strict), spec)


def _fused(spec: ModelSpec, target: str, calibration, progress: bool, strict: bool, gate: Gate | None) -> Detector:
    """A fused entry on ``target``: each member's artifact (built, gated and served as its own
    ``load`` would), their scores combined by the card's rule."""
    rule = fusion_rule(spec)  # before any build: a stale card is refused at once
    runtimes = [runtime_for(served(ensure_artifact(member, target, calibration=calibration, progress=progress,
                                                   gate=gate), strict)) for member in spec.member_specs()]
    backend = MembersBackend(runtimes, adapters_for(spec), rule)
    return Detector(spec, backend, backend.name)


def _from_bundle(bundle: Bundle, target: str | None) -> Detector:
    """An app bundle's model file scored by its runtime here: the first of the bundle's targets
    that runs on this machine, or ``target``."""
    targets = [target] if target else list(bundle.manifest["artifacts"])
    runnable = [t for t in targets if runtime_class(t).is_available()] or targets[:1]
    require_runtime(runnable[0])
    return _from_artifact(bundle.artifact(runnable[0]), get_spec(bundle.manifest["model"]["registered"]))


def _from_artifact(artifact: Artifact, spec: ModelSpec | None = None) -> Detector:
    runtime = runtime_for(artifact)
    if spec is None:
        spec = get_spec(f"{artifact.manifest['model']['name']}-{artifact.precision}")
    return Detector(spec, runtime, runtime.name, artifact=artifact)
