"""INT8 weights that keep the grid a model's stored weights already lie on.

A distilled student ships its conv/linear weights as INT8 per output channel (levels -127..127,
``max|w| / 127``); its FP32 reference is those weights. Run-time-activation INT8 on ONNX Runtime
and OpenVINO stores such weights as INT8 again and runs the convolutions in float, so an
artifact that keeps the grid reproduces the reference (gend-lite: 0 of 615 release flips on
both, where 7-bit QDQ weights flipped 26 and NNCF's ``/128`` grid 13). These tests build a tiny
CNN whose weights lie on the grid and check that each route gives them back exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class TinyCnn(nn.Module):
    """A stem, a depthwise and a pointwise conv, a Linear: every weighted op the routes handle."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # ReLU6, as EfficientNet-Lite
        relu6 = nn.functional.relu6
        x = relu6(self.pointwise(relu6(self.depthwise(relu6(self.stem(x))))))
        return self.fc(x.mean(dim=(2, 3)))


def on_grid(model: nn.Module) -> nn.Module:
    """Every weight rounded to INT8 levels -127..127 with one scale per output channel."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / 127
                w.copy_(torch.round(w / scale) * scale)
    return model.eval()


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = on_grid(TinyCnn())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model, x, model(x).numpy()


def test_openvino_int8_weights_keep_the_stored_grid_exactly(tiny):
    ov = pytest.importorskip("openvino")
    from deepfake_sdk.converters.openvino import compress_weights_narrow

    model, x, expected = tiny
    graph = ov.convert_model(model, example_input=(x,))
    count = compress_weights_narrow(graph, [r".*stem.*"])
    assert count == 3, "depthwise, pointwise and the Linear; the stem matches an ignored pattern"
    int8 = [op for op in graph.get_ordered_ops() if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert len(int8) == 3 and all(np.abs(op.get_data()).max() == 127 for op in int8)
    compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(x.numpy())[0], expected, rtol=1e-4, atol=1e-5)


def test_nncf_symmetric_int8_moves_weights_off_that_grid(tiny):
    """Why the SDK stores OpenVINO's symmetric weights itself: NNCF divides by 128, so the same
    weights come back up to half a level away (if NNCF changes this, the own route can go)."""
    ov = pytest.importorskip("openvino")
    nncf = pytest.importorskip("nncf")

    model, x, expected = tiny
    graph = nncf.compress_weights(ov.convert_model(model, example_input=(x,)), mode=nncf.CompressWeightsMode.INT8_SYM)
    got = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x.numpy())[0]
    assert np.abs(got - expected).max() > 1e-4


def test_onnx_conv_weights_are_stored_int8_and_folded_back_exactly(tiny, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from deepfake_sdk.converters.onnx import ORT_FOLD_DEQUANTIZED_WEIGHTS, int8_conv_weights

    model, x, expected = tiny
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["pixels"], dynamo=False)
    proto = onnx.load(str(path))
    stem = next(n.name for n in proto.graph.node if n.op_type == "Conv")
    assert int8_conv_weights(proto, {stem}) == 2, "depthwise and pointwise; the excluded stem stays float"
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) == 2 and all(a.i == 0 for n in dq for a in n.attribute if a.name == "axis")
    onnx.checker.check_model(proto)
    for fold in (False, True):
        options = ort.SessionOptions()
        if fold:
            options.add_session_config_entry(ORT_FOLD_DEQUANTIZED_WEIGHTS, "1")
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"pixels": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


def test_executorch_run_time_activations_quantize_convolutions_too(tiny):
    """XNNPACK's run-time (qd8) scheme covers full convolutions as well as Linears, so a CNN's
    dynamic recipe is INT8 where most of its FLOPs are; depthwise convolutions have no qd8
    kernel and stay float (on gend-lite: 29 of 43 convolutions INT8, +0.4 MB). A ViT's exported
    blocks have no convolution, so its graph is what the Linear-only annotation gave."""
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model, x, expected = tiny
    graph = torch.export.export(model, (x[:1],)).module()
    scheme = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    prepared = prepare_pt2e(graph, XNNPACKQuantizer().set_global(scheme))
    prepared(x[:1])
    converted = convert_pt2e(prepared)
    targets = [str(n.target) for n in converted.graph.nodes if n.op == "call_function"]
    assert sum("choose_qparams" in t for t in targets) == 3, "stem, pointwise and Linear; not the depthwise"
    got = converted(x[:1]).detach().numpy()
    assert 0 < np.abs(got - expected[:1]).max() < 0.05 * np.abs(expected).max()


def test_litert_float_activations_store_int8_weights_and_give_them_back_exactly(tiny, tmp_path):
    """``activations="float"`` on LiteRT: INT8 weights behind constant DEQUANTIZE ops, float
    convolutions, so a model whose weights lie on the grid runs as its reference does."""
    litert_torch = pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from litert_torch.quantize.quant_config import QuantConfig

    from deepfake_sdk.converters.tflite import weight_only_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model, x, expected = tiny
    quantizer = PT2EQuantizer().set_global(weight_only_config(per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (x[:1],)).module(), quantizer)
    prepared(x[:1])
    converted = convert_pt2e(prepared, fold_quantize=False)
    path = tmp_path / "tiny.tflite"
    litert_torch.convert(converted, (x[:1],), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    interpreter = Interpreter(model_path=str(path))
    int8 = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    shapes = sorted(tuple(int(v) for v in d["shape"]) for d in int8)
    assert shapes == [(1, 3, 3, 8), (8, 3, 3, 3), (16, 1, 1, 8)], "the three convolutions' weights, LiteRT layout"
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[:1].numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected[:1], rtol=1e-4, atol=1e-5)


def test_a_target_refuses_an_activation_scheme_its_converter_does_not_build():
    from deepfake_sdk.errors import UsageError
    from deepfake_sdk.quantization.config import Int8Config, config_for

    assert config_for("int8", "tflite", activations="float").activations == "float"
    for target in ("onnx", "openvino", "executorch", "coreml"):
        with pytest.raises(UsageError, match="builds INT8 activations static, dynamic, not 'float'"):
            config_for("int8", target, activations="float")
    with pytest.raises(UsageError, match="activations='weights'"):
        Int8Config(activations="weights")
