"""OpenVINO IR (``model.xml`` + ``model.bin``): FP32/FP16 conversion, INT8 through NNCF.

Default INT8 (``activations="dynamic"``): ``nncf.compress_weights`` stores every backbone Linear
as INT8 per output channel (symmetric; with ``weight_symmetric=False`` unsigned with a zero point
per channel, which fits a channel whose weights are not centred on zero: GenDF's release-gate
flips went from 3 to 2 of 284 at the same 89.9 MB) and the manifest asks the CPU plugin for
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
import torch
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
from nncf.quantization.advanced_parameters import OverflowFix

from ..models.contract import ExportHints
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
    ignored = nncf.IgnoredScope(patterns=_ignored_patterns(cfg, hints), validate=False)
    with quiet_tools():
        compressed = nncf.compress_weights(model, mode=_weight_mode(cfg), ignored_scope=ignored)
    return compressed, {"engine": "nncf.compress_weights", "mode": _weight_mode(cfg).value,
                        "ignored_scope": ignored.patterns,
                        "activations": f"int8 per token, groups of {DYNAMIC_GROUP_SIZE}, at run time",
                        "runtime_config": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": str(DYNAMIC_GROUP_SIZE)}}


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
