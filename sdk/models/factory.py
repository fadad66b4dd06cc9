"""Build the PyTorch reference model of a zoo spec (timm-style ``create_model``)."""
from __future__ import annotations

import torch

from ..errors import ArtifactError
from ..paths import package_weights_dir
from ..zoo import ModelSpec, get_spec
from .backbones import create_backbone
from .gend import GenD


def create_model(name_or_spec: str | ModelSpec, pretrained: bool = True) -> GenD:
    """The full-precision PyTorch model behind a zoo name, with its trained tensors loaded."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if spec.arch != "gend":
        raise ValueError(f"no builder for architecture {spec.arch!r}")
    backbone = create_backbone(spec.backbone, pretrained=pretrained)
    with torch.random.fork_rng():  # an untrained head is the same in every process
        torch.manual_seed(0)
        model = GenD(backbone)
    if pretrained and spec.weights:
        load_trained(model, spec.weights)
    return model.eval()


def load_trained(model: GenD, weights: str) -> None:
    """Overlay the shipped LayerNorm + head tensors onto the backbone's pretrained weights."""
    from safetensors.torch import load_file

    path = package_weights_dir() / weights
    if not path.is_file():
        raise ArtifactError(
            f"trained weights {path.name} are missing from the package; train them with "
            "`deepfake-sdk train gend --data <data folder>`"
        )
    state = load_file(str(path))
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ArtifactError(f"{path.name} holds tensors this model lacks: {unknown[:3]}")
    model.load_state_dict(state, strict=False)
