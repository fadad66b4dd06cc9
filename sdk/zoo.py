"""The model zoo: names -> specs (timm-style ``register_model`` / ``list_models``).

A spec carries everything a runtime needs to reproduce the reference's preprocessing (crop
size, margin, mean/std, JPEG re-encoding) so no runtime ever guesses them.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """How a face becomes the model's input tensor."""

    size: int = 224
    margin: float = 1.3  # GenD's 5-point template, zoomed out by this factor
    template: str = "gend-5pt"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    jpeg_quality: int | None = 90  # every crop re-encoded so file format carries no signal

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Family:
    """A detector family: one folder under ``sdk/models/`` that registers itself here.

    ``builder`` and ``trainer`` are ``"module:function"`` paths, imported only when a model is
    built or trained, so ``import deepfake_sdk`` never loads torch. ``builder(spec, pretrained)``
    returns the family's :class:`~deepfake_sdk.models.contract.DetectorModel`; ``trainer`` is
    what ``deepfake-sdk train FAMILY`` runs. ``folder`` holds its trained tensors, model cards,
    calibration profiles (``weights/``) and its recorded numerics (``numerics/<model>.md`` and
    ``.json``, written by ``deepfake-sdk numerics``). A family whose entries have no single graph
    declares ``composite`` (``models/composite.py``).
    """

    name: str
    builder: str
    folder: Path
    trainer: str | None = None
    description: str = ""
    # ``"module:function"`` ``(teacher, student, data_dir, out_dir=None, **config) -> card`` for a
    # family whose models are students of another model (``deepfake-sdk distill``); None otherwise.
    distiller: str | None = None
    # ``"module:object"`` following :class:`~deepfake_sdk.models.composite.Composite` for a family
    # whose entries have no single graph (they run their parts' artifacts and combine the scores):
    # load() serves them through it, exporters and bundlers refuse them. None: one graph per entry.
    composite: str | None = None

    @property
    def weights_dir(self) -> Path:
        return self.folder / "weights"

    def numerics_path(self, model: str) -> Path:
        return self.folder / "numerics" / f"{model}.md"

    def numerics_record(self, model: str) -> Path:
        """The machine-readable twin of :meth:`numerics_path` (``deepfake-sdk numerics`` writes both)."""
        return self.numerics_path(model).with_suffix(".json")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # registered Family: "gend"
    backbone: str  # key in models.backbones
    weights: str | None  # trained tensors shipped in the family's weights/ (safetensors file name)
    precision: str  # "fp32" runs the PyTorch reference; "int8" an exported artifact
    version: str = "0.1.0"
    threshold: float = 0.5  # fake if P(fake) >= threshold
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""
    # INT8 activation scheme this architecture wants, over the target row's (measured on ViTs):
    # "static" for LFM's ReLU CNN, whose convolutions then run INT8 too. None: the row's scheme.
    int8_activations: str | None = None
    # ``(target, scheme)`` pairs over ``int8_activations`` where one target wants another scheme
    # (gend-lite: run-time activations where the runtime keeps the stored weight grid, "float"
    # on LiteRT, whose run-time hybrid kernels were measured to drift).
    int8_activations_on: tuple[tuple[str, str], ...] = ()
    # ``(target, n)`` pairs: its n most sensitive Linears kept float on that target, over the
    # row's floor: where its all-INT8 build passes the build gate yet flips held-out faces near
    # its threshold, and the floor was measured to help (a target not named keeps the row's).
    int8_float_floor: tuple[tuple[str, int], ...] = ()
    # Targets whose INT8 weights take a zero point per channel (asymmetric) instead of the
    # symmetric default: where weight error alone flips held-out faces and a zero point was
    # measured to fix it without growing the file (numerics/ of the family records the trial).
    int8_asymmetric_weights: tuple[str, ...] = ()
    # The family builder's keyword arguments (timm's model kwargs), as ``(name, value)`` pairs so
    # the spec stays hashable: ``(("readout", "blocks+patches"),)`` for GenD's multi-block head, the
    # FP32 parts a composite combines: ``(("parts", ("gendf-fp32", "lfm-fp32")),)``.
    arch: tuple[tuple[str, object], ...] = ()

    @property
    def base_name(self) -> str:
        """Name without the precision suffix: ``gend-int8`` and ``gend-fp32`` share ``gend``."""
        return self.name.rsplit("-", 1)[0]

    @property
    def weights_path(self) -> Path | None:
        return get_family(self.family).weights_dir / self.weights if self.weights else None

    @property
    def card_path(self) -> Path | None:
        """The model card beside the weights (``x.safetensors`` -> ``x.card.json``); an entry that
        trains no tensors (a composite's rule) still has one in its family's ``weights/``."""
        path = self.weights_path
        if path is None:
            return get_family(self.family).weights_dir / f"{self.base_name}.card.json"
        return path.with_name(path.name.rsplit(".", 1)[0] + ".card.json")

    def int8_recipe_overrides(self, target: str | None) -> dict:
        """What this model asks of ``config_for`` on ``target`` over the row's INT8 defaults."""
        activations = dict(self.int8_activations_on).get(target, self.int8_activations)
        return {"activations": activations, "min_float_layers": dict(self.int8_float_floor).get(target),
                "weight_symmetric": False if target in self.int8_asymmetric_weights else None}

    def to_dict(self) -> dict:
        return asdict(self)


# What a user gets without naming a model (CLI, scan, benchmark): an alias, so it follows the
# default GenD variant (sdk/models/gend/__init__.py).
DEFAULT_MODEL = "gend-int8"

_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}  # zoo name -> registered name
_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise UnknownModelError(f"unknown model family {name!r}; known: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_alias(name: str, target: str) -> None:
    """``name`` resolves to the registered model ``target`` (``gend-int8`` -> ``gend-clip-b16-int8``):
    the spec, artifact, cache and manifest are the target's, so an alias can move to a better
    variant without touching anything built under the target's name."""
    if target not in _REGISTRY:
        raise ValueError(f"alias {name!r} points at {target!r}, which is not registered")
    _ALIASES[name] = target


def card_heldout_auc(spec: ModelSpec) -> float | None:
    """The mean held-out-family AUC its model card records (``held_out.mean.family.auc``), or
    None for a card without leave-one-family-out folds."""
    card = spec.card_path
    if card is None or not card.is_file():
        return None
    try:
        return float(json.loads(card.read_text())["held_out"]["mean"]["family"]["auc"])
    except (KeyError, TypeError, ValueError):
        return None


def card_threshold(card: Path, default: float = 0.5) -> float:
    """The decision threshold a model card recorded (chosen on held-out real faces for a stated
    false-positive rate), or ``default`` for a card without one."""
    try:
        value = json.loads(Path(card).read_text())["threshold"]["value"]
    except (OSError, ValueError, KeyError, TypeError):
        return default
    return float(value) if isinstance(value, (int, float)) and 0.0 < value < 1.0 else default


def recorded_numerics(spec: ModelSpec) -> dict[str, dict]:
    """This model's recorded parity rows at its precision, by target (``numerics/<variant>.json``,
    written by ``deepfake-sdk numerics``); empty when nothing is recorded or the record is unreadable."""
    path = get_family(spec.family).numerics_record(spec.base_name)
    try:
        return {r["target"]: r for r in json.loads(path.read_text())["rows"] if r["precision"] == spec.precision}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def recorded_drift(spec: ModelSpec) -> dict[str, str]:
    """Targets whose recorded numerics say this model, at this precision, drifts from its float
    reference: ``{target: verdict}``.

    ``load()`` passes these to target selection so a runtime measured to flip faces is not the one
    a user gets by default (it can still be asked for by name). No record means nothing is known
    to drift: selection then follows speed alone and the build gate still checks every build."""
    drift = {target: str(row.get("status")) for target, row in recorded_numerics(spec).items()
             if str(row.get("status")).startswith("DRIFT")}
    for part in parts_of(spec):  # a composite entry drifts wherever one of its parts does
        for target, verdict in recorded_drift(part).items():
            drift.setdefault(target, f"{part.name} {verdict}")
    return drift


def composite_of(spec: ModelSpec):
    """The :class:`~deepfake_sdk.models.composite.Composite` serving ``spec``'s family, or None for
    a family whose entries are one graph each."""
    path = get_family(spec.family).composite
    return load_callable(path) if path else None


def parts_of(spec: ModelSpec) -> list[ModelSpec]:
    """The entries a composite entry runs, at its precision (``gendf-int8`` for ``fused-int8``);
    empty for a single-graph entry."""
    if get_family(spec.family).composite is None:
        return []
    return [get_spec(f"{get_spec(name).base_name}-{spec.precision}") for name in dict(spec.arch).get("parts", ())]


def student_spec(name: str) -> ModelSpec:
    """The full-precision student behind ``name``: a zoo name, or a backbone name
    (``efficientnet-lite0``) that a distilling family registered a student on."""
    if resolve(name) in _REGISTRY:
        spec = get_spec(name)
        return get_spec(f"{spec.base_name}-fp32")
    students = [s for s in _REGISTRY.values()
                if s.precision == "fp32" and get_family(s.family).distiller and name in (s.backbone, s.base_name)]
    if not students:
        known = sorted({s.backbone for s in _REGISTRY.values() if get_family(s.family).distiller})
        raise UnknownModelError(f"no student {name!r}; students are registered on: {', '.join(known)}")
    return students[0]


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in [*_REGISTRY, *_ALIASES] if fnmatch.fnmatch(n, pattern))


def resolve(name: str) -> str:
    """The registered name behind an alias (itself when it is none)."""
    return _ALIASES.get(name, name)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[resolve(name)]
    except KeyError:
        close = difflib.get_close_matches(name, list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}"
        ) from None


def load_callable(path: str) -> Callable:
    """``"package.module:function"`` -> the function (imported now: the lazy half of a registry
    whose entries must not import torch when registered)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def with_precision(spec: ModelSpec, precision: str) -> ModelSpec:
    return replace(spec, name=f"{spec.base_name}-{precision}", precision=precision)


def register_pair(fp32: ModelSpec, int8_description: str) -> tuple[ModelSpec, ModelSpec]:
    """Register a full-precision spec and its INT8 twin (same weights and preprocessing)."""
    return register_model(fp32), register_model(replace(with_precision(fp32, "int8"), description=int8_description))
