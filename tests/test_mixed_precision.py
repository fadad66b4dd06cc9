"""The mixed-precision loop keeps the most sensitive layers float until the gate passes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_sdk.building.export import search_float_layers
from deepfake_sdk.verification.gates import Gate, compare
from deepfake_sdk.quantization.sensitivity import sqnr_db

REF = np.linspace(0.05, 0.95, 200)
LAYERS = {f"layer{i}": float(i) for i in range(10)}  # layer0 is the most damaged (lowest SQNR)


def _export(float_layers):
    # each layer still quantized among the 3 worst adds noise; keeping them float removes it
    noisy = [f"layer{i}" for i in range(3) if f"layer{i}" not in float_layers]
    return {"float": float_layers, "noise": 0.08 * len(noisy)}


def _score(artifact):
    rng = np.random.default_rng(0)
    return np.clip(REF + rng.normal(0, artifact["noise"] + 1e-4, REF.shape), 0, 1)


def test_search_stops_as_soon_as_the_gate_passes():
    calls = []
    artifact, report = search_float_layers(_export, _score, lambda a: calls.append(1) or LAYERS, REF, Gate.build())
    assert report["passed"]
    assert report["float_layers"] == ["layer0", "layer1", "layer2", "layer3"]  # 2 was not enough
    assert [s["float_layers"] for s in report["steps"]] == [0, 2, 4]
    assert len(calls) == 1, "sensitivity is measured once"
    assert not report["steps"][0]["passed"]


def test_a_floor_keeps_its_layers_float_from_the_first_export():
    seen = []
    ranked_on = []

    def sensitivity(artifact):
        ranked_on.append(artifact)
        return LAYERS

    artifact, report = search_float_layers(lambda fl: seen.append(fl) or _export(fl), _score, sensitivity,
                                           REF, Gate.build(), floor=3)
    assert seen[0] == ("layer0", "layer1", "layer2"), "the floor's layers are float in the very first export"
    assert ranked_on == [None], "ranked once, before anything was exported"
    assert report["passed"] and report["floor"] == 3 and [s["float_layers"] for s in report["steps"]] == [3]


def test_search_reports_failure_when_budget_runs_out():
    _, report = search_float_layers(_export, _score, lambda a: {"layer9": 0.0}, REF, Gate.build(), max_steps=3)
    assert not report["passed"] and report["float_layers"] == ["layer9"]


def test_check_and_sqnr():
    labels = (REF > 0.5).astype(int)
    ok = compare(REF, REF, labels)
    assert Gate.build().passes(ok) and ok.pearson > 0.9999 and ok.flip_rate == 0 and ok.auc_drop == 0
    flipped = compare(REF, 1 - REF, labels)
    assert not Gate.build().passes(flipped) and flipped.flip_rate > 0.9
    assert sqnr_db(np.ones(4), np.ones(4)) == float("inf")
    assert abs(sqnr_db(np.ones(100), np.ones(100) * 1.1) - 20.0) < 1e-6


def _flipped(k: int, n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scores and a copy with the ``k`` nearest to 0.5 mirrored across it (Pearson stays ~1)."""
    ref = np.linspace(0.02, 0.98, n)
    cand = ref.copy()
    near = np.argsort(np.abs(ref - 0.5))[:k]
    cand[near] = 1.0 - ref[near]
    return ref, cand


def test_build_gate_fails_flips_only_when_the_data_show_them_above_the_limit():
    assert Gate.build().passes(compare(*_flipped(3)))  # 2.3% observed, lower bound 0.94%
    assert not Gate.build().passes(compare(*_flipped(4)))  # lower bound 1.4%



def test_release_gate_needs_enough_faces_to_show_the_rate_is_small():
    """The release gate judges the upper bound: 128 faces cannot pass it even with no flip (0 of 128
    still allows 2.07%), the release set's ~615 can, and 40 flips near the threshold of 615 fail."""
    assert not Gate.release().passes(compare(*_flipped(0))) and "128 faces cannot show" in Gate.release().too_few_faces(128)
    assert Gate.release().passes(compare(*_flipped(1, n=615))) and Gate.release().too_few_faces(615) is None
    assert not Gate.release().passes(compare(*_flipped(40, n=615)))


# --- mixed precision on the PT2E targets: module names, a shared sensitivity ranking ---

FC = "backbone.encoder.layer.1.mlp.fc1"


@pytest.fixture
def smoothed_tiny(tiny_gend):
    from deepfake_sdk.converters.base import deployable

    return deployable(tiny_gend, 56).eval()


@pytest.fixture
def calib():
    return np.random.default_rng(0).normal(0, 1, (6, 3, 56, 56)).astype(np.float32)


def _quantized_linears(model) -> dict[str, bool]:
    """For every linear of the converted graph: owner module -> are its weights dequantized?"""
    from deepfake_sdk.quantization.pt2e import _owning_module

    graph = model.backbone.encoder.graph
    out = {}
    for node in graph.graph.nodes:
        if node.op == "call_function" and "linear" in str(node.target):
            weight = node.args[1]
            out[_owning_module(node)] = "dequantize" in str(getattr(weight, "target", ""))
    return out


def _quantizers():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config as xnn
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config as lrt

    return {"executorch dynamic": XNNPACKQuantizer().set_module_type(torch.nn.Linear, xnn(is_per_channel=True, is_dynamic=True)),
            "coreml static": XNNPACKQuantizer().set_global(xnn(is_per_channel=True)),
            "tflite dynamic": PT2EQuantizer().set_global(lrt(is_per_channel=True, is_dynamic=True))}


@pytest.mark.parametrize("scheme", ["executorch dynamic", "coreml static", "tflite dynamic"])
def test_pt2e_keeps_named_layers_float(scheme, smoothed_tiny, calib):
    pytest.importorskip("executorch")
    pytest.importorskip("litert_torch")
    from deepfake_sdk.quantization.pt2e import quantize_part

    quantizer = _quantizers()[scheme]
    plain = _quantized_linears(quantize_part(smoothed_tiny, quantizer, calib, keep_stem_float=True))
    assert plain and all(plain.values()), "without float_layers every linear is quantized"
    mixed = _quantized_linears(quantize_part(smoothed_tiny, _quantizers()[scheme], calib,
                                                 keep_stem_float=True, float_layers=(FC,)))
    assert mixed["layer.1.mlp.fc1"] is False
    assert sum(mixed.values()) == len(plain) - 1


def test_pt2e_float_layers_fail_loudly_on_unknown_names(smoothed_tiny, calib):
    pytest.importorskip("executorch")
    from deepfake_sdk.quantization.pt2e import quantize_part

    with pytest.raises(ValueError, match="match no quantized node"):
        quantize_part(smoothed_tiny, _quantizers()["executorch dynamic"], calib, keep_stem_float=True,
                          float_layers=("backbone.encoder.layer.7.mlp.fc1",))
    with pytest.raises(ValueError, match="not inside the quantized part"):
        quantize_part(smoothed_tiny, _quantizers()["executorch dynamic"], calib, keep_stem_float=True,
                          float_layers=("head.fc",))


@pytest.mark.parametrize("activations", ["dynamic", "static"])
def test_linear_sensitivity_ranks_a_damaged_layer_first(activations, smoothed_tiny, calib):
    from deepfake_sdk.quantization.config import Int8Config
    from deepfake_sdk.quantization.sensitivity import linear_sensitivity

    cfg = Int8Config(activations=activations)
    before = linear_sensitivity(smoothed_tiny, calib, cfg)
    assert len(before) == 2 * 6 and all(np.isfinite(v) and v > 10 for v in before.values())
    with torch.no_grad():  # an outlier input channel that fc1 ignores: INT8 steps for the others coarsen
        smoothed_tiny.get_submodule("backbone.encoder.layer.1.norm2").weight[0] = 200.0
        smoothed_tiny.get_submodule(FC).weight[:, 0] = 0.0
    after = linear_sensitivity(smoothed_tiny, calib, cfg)
    assert min(after, key=after.get) == FC
    assert after[FC] < before[FC] - 10


def test_export_keeps_the_most_sensitive_layers_float_and_records_them(tiny_gend, astronaut_crop, tmp_path):
    """An unreachable gate drives the loop on ExecuTorch: all INT8, then the 2 worst layers float."""
    pytest.importorskip("executorch")
    from dataclasses import replace

    from conftest import augmented_crops
    from deepfake_sdk.building.export import export
    from deepfake_sdk.zoo import Preprocessing, get_spec

    spec = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=56))
    crops = augmented_crops(astronaut_crop, 56, 8)
    from deepfake_sdk.quantization import config_for

    no_floor = replace(config_for("int8", "executorch"), min_float_layers=0)  # the loop alone, from all-INT8
    art = export(tiny_gend, "executorch", "int8", calibration=crops, out=tmp_path / "a", spec=spec, quantization=no_floor,
                 verify_on=crops, gate=Gate.build().overridden(min_pearson=1.01), mixed_precision_steps=1)
    report = art.manifest["mixed_precision"]
    assert [s["float_layers"] for s in report["steps"]] == [0, 2] and not report["passed"]
    assert len(report["float_layers"]) == 2 and all(n.startswith("backbone.encoder.layer.") for n in report["float_layers"])
    assert art.manifest["recipe"]["float_layers"] == report["float_layers"]
    assert art.manifest["quantization"]["float"][1:3] == report["float_layers"]
    assert not list(tmp_path.glob(".a.mp-*")), "candidate folders are cleaned up"


def _fake_quantized_inputs(xml_path, layer: str) -> int:
    """FakeQuantize ops feeding the MatMul of ``layer`` in an OpenVINO IR."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    count = 0
    for op in model.get_ops():
        if op.get_type_name() == "MatMul" and f"{layer}/" in op.get_friendly_name():
            for value in op.input_values():
                node = value.get_node()
                while node.get_type_name() in ("Convert", "Multiply", "Subtract", "Transpose", "Reshape"):
                    node = node.input_value(0).get_node()  # walk back through weight decompression
                count += node.get_type_name() == "FakeQuantize"
    return count


def _int8_weights(xml_path, layer: str) -> int:
    """INT8 constants feeding the MatMul of ``layer`` (weight compression) in an OpenVINO IR."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    count = 0
    for op in model.get_ops():
        if op.get_type_name() == "MatMul" and f"{layer}/" in op.get_friendly_name():
            stack = [v.get_node() for v in op.input_values()]
            while stack:
                node = stack.pop()
                if node.get_type_name() == "Constant":
                    count += str(node.get_element_type()) in ("<Type: 'int8_t'>", "<Type: 'uint8_t'>") or \
                        node.get_element_type().get_type_name() in ("i8", "u8")
                elif node.get_type_name() in ("Convert", "Multiply", "Subtract", "Transpose", "Reshape"):
                    stack += [v.get_node() for v in node.input_values()]
    return count


def test_openvino_weight_compression_keeps_named_layers_float(tiny_gend, astronaut_crop, tmp_path):
    pytest.importorskip("nncf")
    from dataclasses import replace

    from conftest import augmented_crops
    from deepfake_sdk.building.export import export
    from deepfake_sdk.quantization.config import Int8Config
    from deepfake_sdk.zoo import Preprocessing, get_spec

    spec = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=56))
    crops = augmented_crops(astronaut_crop, 56, 4)
    plain = export(tiny_gend, "openvino", "int8", calibration=crops, out=tmp_path / "plain", spec=spec)
    mixed = export(tiny_gend, "openvino", "int8", calibration=crops, out=tmp_path / "mixed", spec=spec,
                   quantization=Int8Config(activations="dynamic", float_layers=(FC,)))
    assert plain.manifest["quantization"]["runtime_config"] == {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}
    import openvino as ov

    from deepfake_sdk.runtimes.base import runtime_for
    compiled = runtime_for(plain).compiled  # float parts at FP32 whatever the CPU offers (bf16, AMX)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE") == 32
    assert _int8_weights(plain.model_file, FC) == 1
    assert _int8_weights(mixed.model_file, FC) == 0
    assert _int8_weights(mixed.model_file, FC.replace("fc1", "fc2")) == 1


def _weight_types(xml_path) -> set[str]:
    """Element types of the 8-bit weight constants (the SDK's symmetric, or NNCF's asymmetric)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    return {op.get_element_type().get_type_name() for op in model.get_ops()
            if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")}


def test_openvino_asymmetric_weights_take_a_zero_point(tiny_gend, astronaut_crop, tmp_path):
    """``weight_symmetric=False``: unsigned INT8 weights with a zero point (NNCF INT8_ASYM), said
    in the manifest; the default stays signed and symmetric."""
    pytest.importorskip("nncf")
    from dataclasses import replace

    from conftest import augmented_crops
    from deepfake_sdk.building.export import export
    from deepfake_sdk.quantization.config import Int8Config
    from deepfake_sdk.runtimes.base import runtime_for
    from deepfake_sdk.preprocess import to_batch
    from deepfake_sdk.zoo import Preprocessing, get_spec

    spec = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=56))
    crops = augmented_crops(astronaut_crop, 56, 4)
    sym = export(tiny_gend, "openvino", "int8", calibration=crops, out=tmp_path / "sym", spec=spec)
    asym = export(tiny_gend, "openvino", "int8", calibration=crops, out=tmp_path / "asym", spec=spec,
                  quantization=Int8Config(activations="dynamic", weight_symmetric=False))
    # symmetric weights are the SDK's own, on the -127..127 grid (tests/test_weight_grid.py); asymmetric NNCF's
    assert sym.manifest["quantization"]["mode"] == "int8_sym[-127,127]" and _weight_types(sym.model_file) == {"i8"}
    assert asym.manifest["quantization"]["mode"] == "int8_asym" and _weight_types(asym.model_file) == {"u8"}
    x = to_batch(crops, spec.preprocessing)
    with torch.no_grad():
        ref = tiny_gend(torch.from_numpy(x)).numpy()
    assert np.abs(np.asarray(runtime_for(asym).run(x)) - ref).max() < 0.1


def _plain_and_mixed(model, target: str, activations: str, face, out):
    """``model`` (the tiny GenD) exported INT8 for ``target`` twice, at 56 px: as the recipe says,
    and with ``FC`` kept float."""
    from dataclasses import replace

    from conftest import augmented_crops
    from deepfake_sdk.building.export import export
    from deepfake_sdk.quantization.config import Int8Config
    from deepfake_sdk.zoo import Preprocessing, get_spec

    spec = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=56))
    crops = augmented_crops(face, 56, 4)
    return [export(model, target, "int8", calibration=crops, out=out / name, spec=spec,
                   quantization=Int8Config(activations=activations, float_layers=layers))
            for name, layers in (("plain", ()), ("mixed", (FC,)))]


def test_openvino_keeps_named_layers_float(tiny_gend, astronaut_crop, tmp_path):
    """The static NNCF recipe (``activations="static"``): no FakeQuantize feeds a float layer."""
    pytest.importorskip("nncf")
    plain, mixed = _plain_and_mixed(tiny_gend, "openvino", "static", astronaut_crop, tmp_path)
    assert _fake_quantized_inputs(plain.model_file, FC) > 0
    assert _fake_quantized_inputs(mixed.model_file, FC) == 0
    assert _fake_quantized_inputs(mixed.model_file, FC.replace("fc1", "fc2")) > 0
    assert mixed.manifest["recipe"]["float_layers"] == [FC]


def _tflite_weight_types(model_file) -> dict[str, list[str]]:
    """Per op kind with a weight (FULLY_CONNECTED, CONV_2D): the element type of each weight."""
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(bytearray(model_file.read_bytes()), 0)
    ops = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}
    graph, out = model.subgraphs[0], {}
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = ops[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if kind in ("FULLY_CONNECTED", "CONV_2D"):
            out.setdefault(kind, []).append(types[graph.tensors[op.inputs[1]].type])
    return out


def test_litert_keeps_float_what_the_recipe_keeps_float(tiny_gend, astronaut_crop, tmp_path):
    """LiteRT's converter, in dynamic mode, gives every float weight an INT8 copy; the converter
    puts back the stem's and the named layers' float weights, so the file is what the manifest says."""
    pytest.importorskip("litert_torch")
    plain, mixed = _plain_and_mixed(tiny_gend, "tflite", "dynamic", astronaut_crop, tmp_path)
    before, after = _tflite_weight_types(plain.model_file), _tflite_weight_types(mixed.model_file)
    assert before["CONV_2D"] == ["FLOAT32"] == after["CONV_2D"], "the patch embedding stays float"
    assert before["FULLY_CONNECTED"].count("INT8") == after["FULLY_CONNECTED"].count("INT8") + 1
    assert after["FULLY_CONNECTED"].count("INT8") >= 1, "the other Linears stay INT8"
    restored = mixed.manifest["quantization"]["float_weights_restored"]
    assert restored == plain.manifest["quantization"]["float_weights_restored"] + 1
