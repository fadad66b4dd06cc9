"""The model zoo: names -> specs (timm-style ``register_model`` / ``list_models``).

A spec carries everything a runtime needs to reproduce the reference's preprocessing (crop
size, margin, mean/std, JPEG re-encoding) so no runtime ever guesses them.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, replace
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
class ModelSpec:
    name: str
    arch: str  # "gend"
    backbone: str  # key in models.backbones
    weights: str | None  # trained tensors shipped in the package (safetensors file name)
    precision: str  # "fp32" runs the PyTorch reference; "int8" an exported artifact
    version: str = "0.1.0"
    threshold: float = 0.5  # fake if P(fake) >= threshold
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""

    @property
    def family(self) -> str:
        """Name without the precision suffix: ``gend-int8`` and ``gend-fp32`` share ``gend``."""
        return self.name.rsplit("-", 1)[0]

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(pattern: str = "*") -> list[str]:
    import fnmatch

    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}"
        ) from None


def with_precision(spec: ModelSpec, precision: str) -> ModelSpec:
    return replace(spec, name=f"{spec.family}-{precision}", precision=precision)


_GEND = ModelSpec(
    name="gend-fp32",
    arch="gend",
    backbone="dinov2-vits14-offline",
    weights="gend_dinov2_vits14.safetensors",
    precision="fp32",
    description="GenD (LN-tuned DINOv2 ViT-S/14 + L2 + linear head), PyTorch FP32 reference",
)
register_model(_GEND)
register_model(
    replace(
        with_precision(_GEND, "int8"),
        description="GenD, static INT8 (QDQ, per-channel weights, float L2+head), built on first use",
    )
)
