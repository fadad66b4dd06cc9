"""Core ML ``.mlpackage`` (ML program, iOS 17 / macOS 14+) for Apple devices.

Precisions: ``fp32``/``fp16`` (compute precision), ``int8`` = W8A8 through PT2E on the model's
quantized part (head float) before conversion, and ``w8`` = weight-only 8-bit (``linear_quantize_weights``, per-channel symmetric) on the converted model.

Core ML *prediction* needs macOS. On Linux this converter still converts, saves, reloads the
package without compiling it, counts its ops and weight dtypes, and, for W8A8, measures the
numerics of the PT2E fake-quantized PyTorch graph on the calibration crops: labelled
``simulated`` in the manifest. ``docs/targets.md`` gives the macOS command that checks the real
thing.
"""
from __future__ import annotations

import collections
import importlib.metadata
import json
import shutil
from pathlib import Path

import coremltools as ct
import numpy as np
import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

from ..quantization.pt2e import quantize_part
from .base import INPUT_NAME, OUTPUT_NAMES, ExportRequest, ExportResult, LogitsAndFeatures, example_input, float_parts
from .base import METADATA_KEY, Converter, module_layer_sensitivity, quiet_tools

MODEL_FILE = "model.mlpackage"


def export(request: ExportRequest) -> ExportResult:
    model, details = request.model, {}
    if request.precision == "int8":
        model, details = _quantize_w8a8(request)
    wrapper = LogitsAndFeatures(model).eval()
    with torch.no_grad(), quiet_tools():
        program = torch.export.export(wrapper, (example_input(request.input_size, 1),)).run_decompositions({})
        mlmodel = ct.convert(
            program,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            inputs=[ct.TensorType(name=INPUT_NAME, shape=(1, 3, request.input_size, request.input_size))],
            outputs=[ct.TensorType(name=n) for n in OUTPUT_NAMES],
            compute_precision=ct.precision.FLOAT16 if request.precision == "fp16" else ct.precision.FLOAT32,
        )
        if request.precision == "w8":
            config = ct.optimize.coreml.OptimizationConfig(
                global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
            mlmodel = ct.optimize.coreml.linear_quantize_weights(mlmodel, config)
            details = {"engine": "coremltools", "mode": "weight-only linear_symmetric int8"}
    mlmodel.save(str(request.out_dir / MODEL_FILE))
    details["linux_validation"] = validate_package(request.out_dir / MODEL_FILE)
    return ExportResult(MODEL_FILE, _tool_versions(), {**details, "batch": 1})


def _quantize_w8a8(request: ExportRequest):
    """W8A8 through PT2E. coremltools' own ``CoreMLQuantizer`` imports
    ``torch.ao.quantization.quantizer``, which torch 2.13 no longer has; the quantized part is
    therefore annotated with the XNNPACK quantizer's symmetric config (per-channel INT8 weights, INT8
    activations), whose Q/DQ pairs ``ct.convert`` lowers to Core ML quantize/dequantize ops."""
    per_channel = request.quantization.per_channel
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    float_layers = request.quantization.float_layers
    quantized = quantize_part(request.model, quantizer, request.calibration, float_layers=float_layers,
                              keep_stem_float=request.quantization.keep_first_layer_float)
    return quantized, {"engine": "pt2e", "quantizer": "XNNPACKQuantizer (symmetric)", "scheme": "W8A8",
                       "per_channel": per_channel, "float": float_parts(request.model, request.quantization),
                       "simulated": simulate(request.model, quantized, request.calibration)}


def simulate(reference, quantized, calibration: np.ndarray) -> dict:
    """Numerics of the fake-quantized PyTorch graph vs the float reference (not Core ML itself)."""
    x = torch.from_numpy(calibration)
    with torch.no_grad():
        ref = torch.softmax(reference(x), -1)[:, 1].numpy()
        sim = torch.cat([torch.softmax(quantized(x[i : i + 1]), -1)[:, 1] for i in range(len(x))]).numpy()
    return {"label": "simulated (PT2E fake-quant graph in PyTorch, not Core ML)",
            "samples": int(len(x)), "max_abs_prob_diff": float(np.abs(ref - sim).max()),
            "pearson": float(np.corrcoef(ref, sim)[0, 1]) if len(x) > 1 else None}


def validate_package(path) -> dict:
    """What can be checked without macOS: it reloads, its ops, and its weights' dtypes."""
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    ops: collections.Counter = collections.Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)
    weights = ct.optimize.coreml.get_weights_metadata(mlmodel, weight_threshold=1024)
    dtypes = collections.Counter(str(w.val.dtype) for w in weights.values())
    return {"reloaded": True, "spec_version": spec.specificationVersion,
            "inputs": [i.name for i in spec.description.input],
            "outputs": [o.name for o in spec.description.output],
            "op_counts": dict(ops.most_common()), "weight_dtypes": dict(dtypes)}


def _tool_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "coremltools": importlib.metadata.version("coremltools")}


def embed_metadata(model_file: Path, metadata: dict) -> None:
    """Write ``metadata`` (the app manifest, JSON) into the package's user-defined metadata,
    with the author, version, description and an input description a person reads in Xcode.
    Saved without compiling (works on Linux): ``MLModel(..., skip_model_load=True)``."""
    mlmodel = ct.models.MLModel(str(model_file), skip_model_load=True)
    pp, size = metadata["preprocessing"], metadata["preprocessing"]["size"]
    mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
    mlmodel.author = "deepfake-sdk"
    mlmodel.version = str(metadata["model"]["version"])
    mlmodel.short_description = metadata.get("description", "")
    mlmodel.input_description[INPUT_NAME] = (
        f"RGB face crop aligned to the {pp['template']} template (margin {pp['margin']}), {size}x{size}, "
        f"JPEG re-encoded at quality {pp['jpeg_quality']}, as (x / 255 - mean) / std with mean {pp['mean']} "
        f"and std {pp['std']}, NCHW float32")
    mlmodel.output_description[OUTPUT_NAMES[0]] = "logits (real, fake): P(fake) = softmax(logits)[1]"
    mlmodel.output_description[OUTPUT_NAMES[1]] = "unit-norm feature of the face"
    staged = Path(model_file).with_name(f".meta.{Path(model_file).name}")  # coremltools wants the suffix
    mlmodel.save(str(staged))
    shutil.rmtree(model_file)
    staged.rename(model_file)


def read_metadata(model_file: Path) -> dict | None:
    """The app manifest :func:`embed_metadata` wrote, or None."""
    meta = ct.models.MLModel(str(model_file), skip_model_load=True).user_defined_metadata
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


# float_layers are PyTorch module names, ranked by layer_sensitivity
CONVERTER = Converter(export=export, layer_sensitivity=module_layer_sensitivity, embed_metadata=embed_metadata, read_metadata=read_metadata)
