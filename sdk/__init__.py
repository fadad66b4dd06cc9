"""deepfake-sdk: generalizable deepfake detectors, distilled and quantized for the edge.

    import deepfake_sdk
    det = deepfake_sdk.load("gend-int8")      # runtime chosen for this device
    det.predict("face.jpg")                   # -> Prediction(score, label, faces, runtime, ...)

Heavy packages (torch, runtimes, converters) load only when a function needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArtifactError,
    DeepfakeSDKError,
    InvalidImageError,
    MissingDependencyError,
    UnknownModelError,
)
from .zoo import (  # noqa: E402
    ModelSpec, Preprocessing, get_family, get_spec, list_families, list_models, load_callable, register_model, student_spec,
)
from . import models  # noqa: E402,F401  (each family registers its zoo entries; no torch import)

__all__ = [
    "__version__", "load", "export", "create_model", "list_models", "list_families", "get_spec", "register_model",
    "ModelSpec", "Preprocessing", "DeepfakeSDKError", "InvalidImageError", "UnknownModelError",
    "MissingDependencyError", "ArtifactError", "verify", "build_reference", "distill", "export_bundle",
]


def load(name: str, target: str | None = None, **kwargs):
    from .api import load as _load

    return _load(name, target=target, **kwargs)


def distill(teacher: str, student: str, data_dir, out_dir=None, **config) -> dict:
    """Distil ``teacher`` (a zoo name) into ``student`` (a zoo name or a backbone a distilling
    family registered, ``efficientnet-lite0``); returns the student's model card. ``config``: the
    family's distillation config fields (``epochs``, ``folds``, ``device``, ...)."""
    spec = student_spec(student)
    return load_callable(get_family(spec.family).distiller)(teacher, spec.name, data_dir, out_dir, **config)


def export(model, target: str, precision: str = "int8", **kwargs):
    from .export import export as _export

    return _export(model, target, precision=precision, **kwargs)


def export_bundle(model: str, platform: str, out, **kwargs):
    """An app bundle of ``model``'s INT8 build for ``platform`` (web, android, ios) in ``out``
    (``deepfake_sdk.bundles``)."""
    from .bundles.writer import export_bundle as _bundle

    return _bundle(model, platform, out, **kwargs)


def create_model(name: str, pretrained: bool = True):
    from .models.factory import create_model as _create

    return _create(name, pretrained=pretrained)


def verify(artifact, reference, **kwargs):
    """Check an artifact against a stored float reference (``deepfake_sdk.verification.parity.verify``)."""
    from .parity import verify as _verify

    return _verify(artifact, reference, **kwargs)


def build_reference(model: str, data, out, **kwargs):
    """Store the float reference of ``model`` on a data folder (``deepfake_sdk.verification.parity``)."""
    from .parity import build_reference as _build

    return _build(model, data, out, **kwargs)
