"""A tiny GenD registered in the zoo (``tinygend-fp32`` / ``tinygend-int8``), so tests drive the
real ``load()`` path — calibration, export, build gate, mixed precision, manifest, cache — on
every target in seconds. Subprocess tests import it too: the random init is seeded, so every
process builds the same model."""
from __future__ import annotations

import torch

from deepfake_sdk.models.backbones import register_backbone
from deepfake_sdk.models.backbones.vit import ViTConfig, VisionTransformer
from deepfake_sdk.zoo import ModelSpec, Preprocessing, get_spec, list_models, register_model, with_precision

NAME = "tinygend"
SIZE = 56


def tiny_vit(pretrained: bool = True) -> VisionTransformer:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = VisionTransformer(ViTConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                            patch_size=14, pretrain_image_size=98))
        with torch.no_grad():  # non-trivial layer-scales and a spread-out CLS so scores are not all 0.5
            for name, p in model.named_parameters():
                if name.endswith("lambda1"):
                    p.uniform_(0.5, 1.5)
    return model


def register() -> str:
    """Register the tiny backbone and zoo entries once; returns the INT8 name."""
    if f"{NAME}-int8" not in list_models():
        register_backbone("test-tiny-vit", tiny_vit)
        spec = ModelSpec(name=f"{NAME}-fp32", family="gend", backbone="test-tiny-vit", weights=None, precision="fp32",
                         preprocessing=Preprocessing(size=SIZE), description="tiny random GenD for tests")
        register_model(spec)
        register_model(with_precision(spec, "int8"))
    return f"{NAME}-int8"


def register_families() -> dict[str, str]:
    """Tiny random LFM, GenDF and multi-block GenD entries (``tinylfm-*``, ``tinygendf-*``,
    ``tinygendblocks-*``): every family's graph and head through every target in seconds.
    Returns a key per graph -> FP32 name."""
    register()
    names = {"lfm": "tinylfm-fp32", "gendf": "tinygendf-fp32", "gend-blocks": "tinygendblocks-fp32"}
    shipped = {"lfm": "lfm-fp32", "gendf": "gendf-fp32", "gend-blocks": "gend-clip-b16-blocks-fp32"}
    if names["lfm"] not in list_models():
        for key, name in names.items():
            like = get_spec(shipped[key])  # the shipped entry's family, head and INT8 scheme
            spec = ModelSpec(name=name, family=like.family, backbone="test-tiny-vit", weights=None, precision="fp32",
                             preprocessing=Preprocessing(size=SIZE), description=f"tiny random {key} for tests",
                             int8_activations=like.int8_activations, arch=like.arch)
            register_model(spec)
            register_model(with_precision(spec, "int8"))
    return names
