"""Build the PyTorch reference model of a zoo spec (timm-style ``create_model``)."""
from __future__ import annotations

from ..zoo import ModelSpec, get_family, get_spec, load_callable
from .contract import DetectorModel


def create_model(name_or_spec: str | ModelSpec, pretrained: bool = True) -> DetectorModel:
    """The full-precision PyTorch model behind a zoo name, built by its family, trained tensors
    loaded. The model remembers its spec (``model.zoo_spec``), so ``export(model, ...)`` stamps the
    preprocessing, threshold and calibration of the model it was given, never a default's."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    build = load_callable(get_family(spec.family).builder)
    model = build(spec, pretrained=pretrained).eval()
    model.zoo_spec = spec
    return model
