"""ONNX (for ONNX Runtime and onnxruntime-web): FP32 export; INT8 per block or as static QDQ.

Default INT8 (``activations="dynamic"``): every weight MatMul becomes ORT's ``MatMulNBits`` with
8-bit symmetric weights per block of 128 input channels and ``accuracy_level=4``, which
quantizes each activation row to int8 per block at run time. No activation range is fixed at
export, so the build needs no face data (only SmoothQuant's recorded maxima) and holds on faces
unlike any calibration set: on the packaged gate faces Pearson 0.9978 and 0/128 flips, where
static QDQ gave 0.987 and 4/128 (docs/targets.md). ``activations="static"`` keeps the QDQ route:

Route measured on this project's machines (see docs/targets.md):
``torch.onnx.export(dynamo=True)`` -> drop ``value_info`` -> ``quant_pre_process`` ->
``quantize_static`` (QDQ, per-channel weights, MatMul/Gemm/Conv) with every node outside the
model's quantized part (its export hints: the L2-norm and head) excluded so the tail stays float.

Two settings carry most of the accuracy (gend, 618 crops, logit RMSE vs FP32):
* only the *inputs* of MatMul/Conv are quantized. By default ORT also puts a Q/DQ pair on each
  MatMul's output before the bias Add, pure extra rounding (0.207 -> 0.138);
* u8 weights (u8 x u8 kernels): u8 x s8 saturates on x86 without VNNI (0.138 -> 0.108).
"""
from __future__ import annotations

import ast
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import onnxscript
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..models.contract import ExportHints
from ..quantization.grid import int8_levels
from ..quantization.sensitivity import sqnr_db
from .base import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAMES,
    Converter,
    ExportRequest,
    ExportResult,
    LogitsAndFeatures,
    example_input,
    module_layer_sensitivity,
    quiet_tools,
)

OPSET = 18


def export(request: ExportRequest) -> ExportResult:
    fp32_path = request.out_dir / "model_fp32.onnx"
    export_fp32(request.model, request.input_size, fp32_path)
    tools = _tool_versions()
    if request.precision == "fp32":
        fp32_path.rename(request.out_dir / "model.onnx")
        return ExportResult("model.onnx", tools)
    if request.precision != "int8":
        raise ValueError(f"the onnx target writes fp32 or int8, not {request.precision!r}")
    quantize = quantize_blockwise if request.quantization.activations == "dynamic" else quantize_int8
    details = quantize(fp32_path, request.out_dir / "model.onnx", request.calibration, request.quantization,
                       request.model.export_hints())
    fp32_path.unlink()
    return ExportResult("model.onnx", tools, details)


def export_fp32(model: torch.nn.Module, size: int, path: Path) -> None:
    """Dynamic-batch ONNX graph with outputs ``logits`` and ``features``."""
    wrapper = LogitsAndFeatures(model).eval()
    batch = torch.export.Dim("batch", min=1, max=256)
    with quiet_tools():
        torch.onnx.export(
            wrapper,
            (example_input(size, 2),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"pixels": {0: batch}},
            dynamo=True,
            opset_version=OPSET,
            external_data=False,
        )
    graph = onnx.load(str(path))
    # Stale intermediate shapes from the exporter confuse ORT's quantization shape inference.
    del graph.graph.value_info[:]
    onnx.save(graph, str(path))


def activation_matmuls(model_path: Path) -> list[str]:
    """MatMul nodes with no weight operand (attention's Q.K^T and softmax.V)."""
    graph = onnx.load(str(model_path)).graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not weights.intersection(n.input)]


def _owner(node) -> str | None:
    """PyTorch module name a node was exported from (``backbone.encoder.layer.0.mlp.fc1``);
    None for the export wrapper's own ops."""
    meta = {p.key: p.value for p in node.metadata_props}
    # scopes run outermost first ('', 'model.backbone', ...) and end with the fx node's name
    modules = [s for s in ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]")) if s.startswith("model.")]
    return modules[-1].removeprefix("model.") if modules else None


def outside_nodes(model_path: Path, hints: ExportHints) -> list[str]:
    """Nodes outside the model's quantized part: the float tail (L2-norm, head)."""
    return [n.name for n in onnx.load(str(model_path)).graph.node
            if (owner := _owner(n)) is None or not hints.inside(owner)]


def stem_nodes(model_path: Path, hints: ExportHints) -> list[str]:
    """Nodes of the hints' stem (a ViT's patch embedding), float under ``keep_first_layer_float``."""
    return [n.name for n in onnx.load(str(model_path)).graph.node if (owner := _owner(n)) and hints.in_stem(owner)]


class _Reader:
    """ORT CalibrationDataReader over preprocessed crops, a few at a time."""

    def __init__(self, crops: np.ndarray, batch: int = 8):
        self._batches = iter([{INPUT_NAME: crops[i : i + batch]} for i in range(0, len(crops), batch)])

    def get_next(self):
        return next(self._batches, None)

    def __iter__(self):
        return iter(self.get_next, None)


def module_nodes(model_path: Path) -> dict[str, list[str]]:
    """PyTorch module name (``backbone.encoder.layer.0.mlp.fc1``) -> the ONNX nodes it exported to."""
    out: dict[str, list[str]] = {}
    for node in onnx.load(str(model_path)).graph.node:
        owner = _owner(node)
        if owner:
            out.setdefault(owner, []).append(node.name)
    return out


def _float_layer_nodes(model_path: Path, layers: tuple[str, ...], hints: ExportHints) -> list[str]:
    """Node names of ``layers``: module names are mapped, node names pass through."""
    by_module = module_nodes(model_path)
    nodes = []
    for layer in layers:
        if layer in by_module:
            nodes += by_module[layer]
        elif hints.inside(layer):
            raise ValueError(f"float layer {layer!r} matches no node of the exported graph")
        else:
            nodes.append(layer)
    return nodes


def quantize_blockwise(fp32_path: Path, out_path: Path, calibration, cfg, hints: ExportHints) -> dict:
    """8-bit ``MatMulNBits`` per block (int8 compute, activations quantized at run time)."""
    prep_path = fp32_path.with_name("model_prep.onnx")
    with quiet_tools():
        quant_pre_process(str(fp32_path), str(prep_path), skip_symbolic_shape=True)
    excluded = (outside_nodes(prep_path, hints) if cfg.keep_tail_float else []) + activation_matmuls(prep_path)
    excluded += _float_layer_nodes(prep_path, cfg.float_layers, hints)
    if cfg.keep_first_layer_float:
        excluded += stem_nodes(prep_path, hints)
    algo = DefaultWeightOnlyQuantConfig(block_size=cfg.block_size, is_symmetric=cfg.weight_symmetric,
                                        accuracy_level=4, bits=8)
    with quiet_tools():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(prep_path)), nodes_to_exclude=excluded, algo_config=algo)
        quantizer.process()
        convs = int8_conv_weights(quantizer.model.model, set(excluded))
        quantizer.model.save_model_to_file(str(out_path))
    prep_path.unlink()
    return {"format": "MatMulNBits", "bits": 8, "block_size": cfg.block_size, "accuracy_level": 4,
            "activations": "int8 per block at run time (MatMul); float (Conv)",
            "conv_weights": f"{convs} Conv weights INT8 per output channel (-127..127), DequantizeLinear",
            "float_nodes": excluded, "float_layers": list(cfg.float_layers),
            # ORT keeps DequantizeLinear nodes for its QDQ fusions, so by default every run would
            # dequantize the weights again (gend-lite: 64 ms instead of 26); with the QDQ transforms
            # off, constant folding turns them into float weights once, when the session loads.
            "runtime_config": {ORT_FOLD_DEQUANTIZED_WEIGHTS: "1"} if convs else {}}


ORT_FOLD_DEQUANTIZED_WEIGHTS = "session.disable_quant_qdq"  # a SessionOptions config entry


def int8_conv_weights(model: onnx.ModelProto, excluded: set[str]) -> int:
    """Store every Conv weight outside ``excluded`` as INT8 behind a per-channel ``DequantizeLinear``
    (the shared grid, ``quantization/grid.py``: a distilled student's weights already lie on it,
    so they come back exactly); the convolution itself runs in float. ORT's dynamic INT8 for Conv
    (``ConvInteger``) has no depthwise kernel worth using, and static QDQ's 7-bit weights (safe
    without VNNI) moved gend-lite's scores enough to flip 26 of 615 release faces. Returns how many."""
    inits = {init.name: init for init in model.graph.initializer}
    added = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in excluded or node.input[1] not in inits:
            continue
        weight = onnx.numpy_helper.to_array(inits[node.input[1]])
        levels, scale = int8_levels(weight, tuple(range(1, weight.ndim)))
        scale = scale.reshape(-1)
        name = node.input[1]
        model.graph.initializer.remove(inits.pop(name))
        model.graph.initializer.extend([onnx.numpy_helper.from_array(levels, f"{name}_int8"),
                                        onnx.numpy_helper.from_array(scale, f"{name}_scale"),
                                        onnx.numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero")])
        added.append(onnx.helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                           [f"{name}_dq"], name=f"{name}_DequantizeLinear", axis=0))
        node.input[1] = f"{name}_dq"
    for dq in reversed(added):  # inputs are initializers: first in the graph keeps it topologically sorted
        model.graph.node.insert(0, dq)
    return len(added)


def saturation_safe_weights(model_path: Path, excluded: list[str]) -> tuple[QuantType, bool]:
    """Weights whose products cannot saturate AVX2's int16 pair sums (CPUs without VNNI):
    u8 weights (u8 x u8 kernels) where the quantized ops are MatMul/Gemm, as measured on ViTs;
    7-bit s8 weights where they are all convolutions, because MLAS runs u8 x u8 ``QLinearConv``
    on a slow path (EfficientNet-Lite0 on AMX: 214 ms vs 11 ms with s8 weights, FP32 17 ms)."""
    skip = set(excluded)
    ops = {n.op_type for n in onnx.load(str(model_path)).graph.node if n.name not in skip}
    if ops & {"MatMul", "Gemm"}:
        return QuantType.QUInt8, False
    return QuantType.QInt8, True


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray, cfg, hints: ExportHints) -> dict:
    if calibration is None or not len(calibration):
        raise ValueError("static INT8 needs calibration crops")
    prep_path = fp32_path.with_name("model_prep.onnx")
    with quiet_tools():
        quant_pre_process(str(fp32_path), str(prep_path), skip_symbolic_shape=True)
    excluded = outside_nodes(prep_path, hints) if cfg.keep_tail_float else []
    if not cfg.quantize_attention_matmuls:
        excluded += activation_matmuls(prep_path)
    if cfg.keep_first_layer_float:
        excluded += stem_nodes(prep_path, hints)
    excluded += _float_layer_nodes(prep_path, cfg.float_layers, hints)
    weight_type, reduce_range = saturation_safe_weights(prep_path, excluded) if cfg.saturation_safe \
        else (QuantType.QInt8, False)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with quiet_tools():
        quantize_static(
            str(prep_path),
            str(out_path),
            _Reader(calibration.astype(np.float32)),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(cfg.op_types),
            per_channel=cfg.per_channel,
            activation_type=QuantType.QInt8 if cfg.activation_symmetric else QuantType.QUInt8,
            weight_type=weight_type,
            nodes_to_exclude=excluded,
            calibrate_method=methods[cfg.calibration_method],
            reduce_range=reduce_range,
            extra_options={"ActivationSymmetric": cfg.activation_symmetric,
                           "WeightSymmetric": cfg.weight_symmetric and weight_type == QuantType.QInt8,
                           "OpTypesToExcludeOutputQuantization": list(cfg.op_types)},
        )
    prep_path.unlink()
    return {"format": "QDQ", "float_nodes": excluded, "quantized_op_types": list(cfg.op_types),
            "weight_type": weight_type.name, "weight_bits": 7 if reduce_range else 8, "outputs_quantized": False}


def _tool_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "onnxscript": onnxscript.__version__}


def layer_sensitivity(artifact_dir: Path, calibration: np.ndarray, model=None, config=None) -> dict[str, float]:
    """Per-layer SQNR (dB): the PyTorch simulation keyed by module name for the blockwise recipe,
    the artifact's own QDQ graph keyed by node name for the static one."""
    if config is not None and config.activations == "dynamic":
        return module_layer_sensitivity(artifact_dir, calibration, model, config)
    return qdq_sensitivity(artifact_dir, calibration)


def qdq_sensitivity(artifact_dir: Path, calibration: np.ndarray) -> dict[str, float]:
    """SQNR (dB) of each quantized layer's input activation after QDQ: lower = more damage.

    Uses ONNX Runtime's QDQ debugging helpers on the artifact's own INT8 graph; the result is
    keyed by node name, as ``Int8Config.float_layers`` expects.
    """
    qdq_path = Path(artifact_dir) / "model.onnx"
    graph = onnx.load(str(qdq_path)).graph
    weights = {t.name for t in graph.initializer}
    dq_source = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    q_source = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    with tempfile.TemporaryDirectory() as tmp, quiet_tools():
        augmented = str(Path(tmp) / "augmented.onnx")
        modify_model_output_intermediate_tensors(str(qdq_path), augmented)
        activations = collect_activations(augmented, _Reader(calibration.astype(np.float32)))
        matching = create_activation_matching(activations)
    errors = {name: sqnr_db(np.concatenate([a.ravel() for a in m["pre_qdq"]]),
                            np.concatenate([a.ravel() for a in m["post_qdq"]]))
              for name, m in matching.items()}
    scores: dict[str, float] = {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        for tensor in node.input:
            source = q_source.get(dq_source.get(tensor, ""), None)  # float tensor fed to Q -> DQ -> node
            if source and source not in weights and source in errors:
                scores[node.name] = min(scores.get(node.name, float("inf")), errors[source])
    return scores


def embed_metadata(model_file: Path, metadata: dict) -> None:
    """Write ``metadata`` (the app manifest, JSON) into the ONNX file's ``metadata_props``
    (onnxruntime-web and every ORT binding read them: ``session.getModelMetadata``)."""
    model = onnx.load(str(model_file))
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    model.doc_string = metadata.get("description", model.doc_string)
    onnx.save(model, str(model_file))


def read_metadata(model_file: Path) -> dict | None:
    """The app manifest :func:`embed_metadata` wrote, or None."""
    props = {p.key: p.value for p in onnx.load(str(model_file), load_external_data=False).metadata_props}
    return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else None


def for_browser(model_file: Path) -> dict:
    """Make the model compute in the browser what it says it computes.

    onnxruntime-web's wasm kernels run ``MatMulNBits`` in float (8-bit weights dequantized)
    whatever its ``accuracy_level`` asks: on gend-int8 the page's scores equalled native ORT's at
    ``accuracy_level=0`` to 1e-4 and differed from the ``accuracy_level=4`` (int8 activations)
    artifact by up to 0.024. Setting 0 in the bundle's copy makes native ORT (the Python SDK,
    ``load(bundle)``) compute what the browser computes, so the two can be checked against each other."""
    model = onnx.load(str(model_file))
    changed = 0
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "MatMulNBits" and attr.name == "accuracy_level" and attr.i != 0:
                attr.i, changed = 0, changed + 1
    if changed:
        onnx.save(model, str(model_file))
    return {"matmulnbits_float_compute": changed,
            "note": "8-bit weights, float activations: what onnxruntime-web's wasm MatMulNBits computes"}


# float_layers are PyTorch module names (the static recipe: QDQ node names), ranked by layer_sensitivity
CONVERTER = Converter(export=export, layer_sensitivity=layer_sensitivity, embed_metadata=embed_metadata, read_metadata=read_metadata, for_browser=for_browser)
