"""ONNX target on a tiny random-init GenD: FP32 is exact, INT8 is close, the tail stays float."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from deepfake_sdk.building.export import export
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.runtimes.base import runtime_for
from deepfake_sdk.zoo import Preprocessing, get_spec
from dataclasses import replace

SPEC = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=56))


@pytest.fixture
def crops(astronaut_crop):
    from conftest import augmented_crops

    return augmented_crops(astronaut_crop, 56, 24)


def _reference(model, crops):
    with torch.no_grad():
        return model(torch.from_numpy(to_batch(crops, SPEC.preprocessing))).numpy()


def test_fp32_export_matches_torch(tiny_gend, crops, tmp_path):
    art = export(tiny_gend, "onnx", "fp32", out=tmp_path / "fp32", spec=replace(SPEC, name="gend-fp32", precision="fp32"))
    logits = runtime_for(art).run(to_batch(crops, SPEC.preprocessing))
    assert np.abs(logits - _reference(tiny_gend, crops)).max() < 1e-4
    assert art.manifest["precision"] == "fp32" and art.manifest["calibration"] is None


@pytest.mark.parametrize("activations, quant_ops", [("dynamic", {"MatMulNBits"}),  # the default
                                                    ("static", {"QuantizeLinear", "DequantizeLinear"})])
def test_int8_export(activations, quant_ops, tiny_gend, crops, tmp_path):
    from deepfake_sdk.quantization import Int8Config

    art = export(tiny_gend, "onnx", "int8", calibration=crops, out=tmp_path / "int8", spec=SPEC,
                 quantization=Int8Config(activations=activations, block_size=64))
    runtime = runtime_for(art)
    batch = to_batch(crops, SPEC.preprocessing)
    logits, ref = runtime.run(batch), _reference(tiny_gend, crops)
    assert logits.shape == ref.shape == (24, 2)
    assert np.corrcoef(logits[:, 1] - logits[:, 0], ref[:, 1] - ref[:, 0])[0, 1] > 0.9
    feats = runtime.features(batch)
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)

    graph = onnx.load(str(art.model_file)).graph
    ops = [n.op_type for n in graph.node]
    assert quant_ops <= set(ops)
    weight_matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in {t.name for t in graph.initializer}]
    assert not weight_matmuls or activations == "static", "every backbone weight MatMul became MatMulNBits"
    float_nodes = set(art.manifest["quantization"]["float_nodes"])
    head = [n for n in graph.node if n.op_type == "Gemm"]
    assert head and all(n.name in float_nodes for n in head)
    producers = {o: n for n in graph.node for o in n.output}
    assert all(producers[i].op_type not in ("DequantizeLinear", "MatMulNBits") for i in head[0].input if i in producers), \
        "the head must read float tensors"

    m = art.manifest
    assert m["calibration"]["size"] == 24 and len(m["calibration"]["sha256"]) == 64
    assert m["preprocessing"]["size"] == 56 and m["threshold"] == SPEC.threshold
    assert {"torch", "onnx", "onnxruntime"} <= set(m["tools"])


def test_int8_artifact_is_smaller_for_a_real_width_model(tmp_path, crops):
    """Weights dominate at ViT widths: INT8 must be well under a third of FP32."""
    from conftest import tiny_vit_config
    from deepfake_sdk.models.gend.model import GenD
    from deepfake_sdk.models.backbones.vit import VisionTransformer

    torch.manual_seed(0)
    model = GenD(VisionTransformer(tiny_vit_config(hidden_size=256, num_heads=4, intermediate_size=1024,
                                                  num_layers=4))).eval()
    fp32 = export(model, "onnx", "fp32", out=tmp_path / "f", spec=replace(SPEC, name="gend-fp32", precision="fp32"))
    from deepfake_sdk.quantization import Int8Config

    # the float patch embedding is ~1% of ViT-S but 15% of this toy: judge the weights alone
    recipe = Int8Config(keep_first_layer_float=False)
    int8 = export(model, "onnx", "int8", calibration=crops, out=tmp_path / "i", spec=SPEC, quantization=recipe)
    assert int8.size_bytes() < 0.3 * fp32.size_bytes()
