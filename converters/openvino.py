"""OpenVINO IR (``model.xml`` + ``model.bin``): FP32/FP16 conversion, INT8 through NNCF.

Default INT8 (``activations="dynamic"``): every backbone Linear and convolution weight is stored
as INT8 per output channel (symmetric, by :func:`compress_weights_narrow` on the grid every target
shares; with ``weight_symmetric=False`` by ``nncf.compress_weights``, unsigned with a zero point
per channel, which fits a channel whose weights are not centred on zero: GenDF's release-gate
flips went from 3 to 2 of 284 at the same 89.9 MB); convolutions run in float on them, and the manifest asks the CPU plugin for
``DYNAMIC_QUANTIZATION_GROUP_SIZE=32``, which quantizes activations per token in groups of 32
channels at run time. Nothing is calibrated on faces, and it holds where static ranges did not:
on the packaged gate faces Pearson 0.998 and 1/128 flips against 0.978 and 3/128 for static NNCF
(AVX-512 VNNI EPYC; 18.8 ms vs 29.1 ms FP32). On an AVX2-only CPU (no VNNI) the plugin does not
quantize activations at all: group sizes 32, 16 and 0 (off) gave GenDF bit-identical scores, so
there the only INT8 error is the weights'. ``activations="static"`` keeps the route below:

``ov.convert_model`` traces the PyTorch reference directly; ``nncf.quantize`` (transformer
preset, per-channel symmetric weights) calibrates on the face crops with the head ignored, so
the L2-norm and classifier stay float. NNCF's own SmoothQuant is off (ours already ran, and
stacking its alpha 0.95 on top pushed logit RMSE from 0.14 to 0.20), attention's
activation x activation products stay float, and with ``saturation_safe`` the weights use
7 bits (``OverflowFix.ENABLE``) so u8 x s8 products cannot saturate on CPUs without VNNI. Weights are saved as written
(``compress_to_fp16=False``): OpenVINO's default silently halves FP32 models.
"""
from __future__ import annotations

import re

import nncf
import numpy as np
import openvino as ov
import openvino.opset13 as opset
import torch
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
from nncf.quantization.advanced_parameters import OverflowFix

from ..models.contract import ExportHints
from ..quantization.grid import int8_levels
from .base import INPUT_NAME, OUTPUT_NAMES, ExportRequest, ExportResult, LogitsAndFeatures, example_input, quiet_tools
from .base import Converter, module_layer_sensitivity


# Activation x activation products (a ViT's Q.K^T and softmax.V), traced from torch.bmm.
ATTENTION_PRODUCTS_PATTERN = r".*aten::bmm.*"


def export(request: ExportRequest) -> ExportResult:
    wrapper = LogitsAndFeatures(request.model).eval()
    size = request.input_size
    with torch.no_grad(), quiet_tools():
        model = ov.convert_model(wrapper, example_input=(example_input(size, 2),),
                                 input=[(INPUT_NAME, ov.PartialShape([-1, 3, size, size]))])
    for output, name in zip(model.outputs, OUTPUT_NAMES):
        output.get_tensor().set_names({name})
    details: dict = {}
    hints = request.model.export_hints()
    if request.precision == "int8" and request.quantization.activations == "dynamic":
        model, details = _compress_weights(model, request.quantization, hints)
    elif request.precision == "int8":
        model, details = _quantize(model, request.calibration, request.quantization, hints)
    ov.save_model(model, str(request.out_dir / "model.xml"), compress_to_fp16=request.precision == "fp16")
    return ExportResult("model.xml", _tool_versions(), details)


DYNAMIC_GROUP_SIZE = 32  # channels per run-time activation scale (CPU plugin)


def _ignored_patterns(cfg, hints: ExportHints) -> list[str]:
    """NNCF ignored-scope patterns. Traced node names carry the module path
    (``__module.model.backbone.encoder.layer.0.mlp.fc1/aten::linear/MatMul``): the tail is every
    node outside ``model.<quantized>``, the stem and float layers are matched by their paths."""
    patterns = [rf"(?!.*model\.{re.escape(hints.quantized)}[./]).*"] if cfg.keep_tail_float else []
    if cfg.keep_first_layer_float:
        patterns += [rf".*model\.{re.escape(stem)}[./].*" for stem in hints.stem]
    if not cfg.quantize_attention_matmuls:
        patterns.append(ATTENTION_PRODUCTS_PATTERN)
    return patterns + [rf".*{re.escape(layer)}/.*" for layer in cfg.float_layers]


def _compress_weights(model, cfg, hints: ExportHints):
    patterns = _ignored_patterns(cfg, hints)
    if cfg.weight_symmetric:
        count = compress_weights_narrow(model, patterns)
        engine = {"engine": "deepfake_sdk narrow INT8 weights", "mode": "int8_sym[-127,127]", "layers": count}
    else:
        with quiet_tools():
            model = nncf.compress_weights(model, mode=_weight_mode(cfg),
                                          ignored_scope=nncf.IgnoredScope(patterns=patterns, validate=False))
        engine = {"engine": "nncf.compress_weights", "mode": _weight_mode(cfg).value}
    return model, {**engine, "ignored_scope": patterns,
                        "activations": f"MatMul inputs int8 per token in groups of {DYNAMIC_GROUP_SIZE} at run time "
                                       "(CPUs with VNNI); convolutions float on the INT8 weights",
                        "runtime_config": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": str(DYNAMIC_GROUP_SIZE)}}


WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul")


def compress_weights_narrow(model: "ov.Model", ignored_patterns: list[str]) -> int:
    """Every float weight of a Convolution, GroupConvolution or MatMul outside ``ignored_patterns``
    stored as INT8 on the shared grid (``quantization/grid.py``), decompressed by
    ``Convert -> Multiply`` as the CPU plugin expects; returns how many layers. Why not NNCF's
    INT8_SYM: it divides by 128 (levels -128..127), so weights already on the -127..127 grid (the
    CLIP package's, a distilled student's) move by up to half a level each: gend-lite flipped 13
    release faces instead of 0, the default GenD 10 instead of 1."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OPS or any(re.fullmatch(p, op.get_friendly_name()) for p in ignored_patterns):
            continue
        const = op.input(1).get_source_output().get_node()
        if const.get_type_name() != "Constant" or const.get_element_type() != ov.Type.f32:
            continue
        weight = const.get_data()
        levels, scale = int8_levels(weight, _reduction_axes(op, weight.ndim))
        decompressed = opset.multiply(opset.convert(opset.constant(levels), ov.Type.f32), opset.constant(scale))
        op.input(1).replace_source_output(decompressed.output(0))
        count += 1
    model.validate_nodes_and_infer_types()
    return count


def _reduction_axes(op, ndim: int) -> tuple[int, ...]:
    """Axes one output channel's weights span: a convolution's ``[O, I, kh, kw]`` and a grouped
    one's ``[G, O/G, I/G, kh, kw]`` keep the leading output axes; a MatMul's ``[O, I]`` keeps
    rows when the weight is transposed (a Linear), else columns."""
    if op.get_type_name() == "Convolution":
        return tuple(range(1, ndim))
    if op.get_type_name() == "GroupConvolution":
        return tuple(range(2, ndim))
    transposed = op.get_attributes().get("transpose_b", False)
    return (ndim - 1,) if transposed else (ndim - 2,)


def _weight_mode(cfg) -> "nncf.CompressWeightsMode":
    return nncf.CompressWeightsMode.INT8_SYM if cfg.weight_symmetric else nncf.CompressWeightsMode.INT8_ASYM


def _quantize(model, calibration: np.ndarray, cfg, hints: ExportHints):
    if calibration is None or not len(calibration):
        raise ValueError("static INT8 needs calibration crops")
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    ignored = nncf.IgnoredScope(patterns=_ignored_patterns(cfg, hints), validate=False)
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE if cfg.saturation_safe else OverflowFix.DISABLE,
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1, convolution=-1),
    )
    with quiet_tools():
        quantized = nncf.quantize(
            model,
            dataset,
            model_type=nncf.ModelType.TRANSFORMER,
            preset=nncf.QuantizationPreset.PERFORMANCE if cfg.activation_symmetric else nncf.QuantizationPreset.MIXED,
            subset_size=len(calibration),
            ignored_scope=ignored,
            advanced_parameters=advanced,
        )
    return quantized, {"engine": "nncf", "model_type": "transformer",
                       "activations": "symmetric" if cfg.activation_symmetric else "asymmetric", "ignored_scope": ignored.patterns,
                       "overflow_fix": advanced.overflow_fix.value, "nncf_smoothquant": False}


def _tool_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "openvino": ov.__version__, "nncf": nncf.__version__}


# float_layers are PyTorch module names, ranked by layer_sensitivity
CONVERTER = Converter(export=export, layer_sensitivity=module_layer_sensitivity)
