"""TFLite / LiteRT ``.tflite`` (Android, Coral-class edge boxes, MCUs with LiteRT Micro).

Converted by ``litert_torch`` (no TensorFlow needed). INT8: the model's quantized part goes
through PT2E with LiteRT's ``PT2EQuantizer`` (symmetric, per-channel weights) and is swapped
back beside the float head. By default (the target's row) activations are dynamic: LiteRT's
static INT8 rounds each layer's output to one scale and DINOv2's outlier channels cost 0.95
Pearson (0.9995 dynamic); the converter is told the graph is PT2E-quantized so Q/DQ pairs
become INT8 kernels. Exported at batch 1.
"""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import flatbuffers
import litert_torch
import torch
from ai_edge_litert import schema_py_generated as tfl
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.quant_config import QuantConfig

from ..quantization.pt2e import quantize_part
from .base import ExportRequest, ExportResult, LogitsAndFeatures, example_input, float_parts, module_layer_sensitivity
from .base import METADATA_KEY, quiet_tools

layer_sensitivity = module_layer_sensitivity  # float_layers are module names (mixed precision)


def export(request: ExportRequest) -> ExportResult:
    model, quant_config, details = request.model, None, {}
    if request.precision == "int8":
        model, quant_config, details = _quantize(request)
    elif request.precision != "fp32":
        raise ValueError(f"the tflite target writes fp32 or int8, not {request.precision!r}")
    wrapper = LogitsAndFeatures(model).eval()
    with torch.no_grad(), quiet_tools():
        edge = litert_torch.convert(wrapper, (example_input(request.input_size, 1),), quant_config=quant_config)
    edge.export(str(request.out_dir / "model.tflite"))
    return ExportResult("model.tflite", _tool_versions(), {**details, "batch": 1})


def _quantize(request: ExportRequest):
    cfg = request.quantization
    dynamic = cfg.activations == "dynamic"
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=cfg.per_channel,
                                                                            is_dynamic=dynamic))
    model = quantize_part(request.model, quantizer, request.calibration, fold_quantize=False,
                          keep_stem_float=cfg.keep_first_layer_float, float_layers=cfg.float_layers)
    details = {"engine": "pt2e", "quantizer": "litert PT2EQuantizer", "per_channel": cfg.per_channel,
               "activations": cfg.activations, "float": float_parts(request.model, cfg)}
    return model, QuantConfig(pt2e_quantizer=quantizer), details


def _tool_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("torch", "litert-torch", "ai-edge-litert")}


def embed_metadata(model_file: Path, metadata: dict) -> None:
    """Add ``metadata`` (the app manifest, JSON) to the ``.tflite`` flatbuffer's own metadata
    table, as a named buffer: LiteRT's ``Interpreter`` ignores it, app code and Netron read it.
    Any earlier entry of the same name is replaced, so embedding twice leaves one."""
    model = tfl.ModelT.InitFromPackedBuf(bytearray(Path(model_file).read_bytes()), 0)
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_KEY]
    buffer = tfl.BufferT()
    buffer.data = list(json.dumps(metadata, sort_keys=True).encode())
    model.buffers.append(buffer)
    entry = tfl.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(model_file).write_bytes(bytes(builder.Output()))


def read_metadata(model_file: Path) -> dict | None:
    """The app manifest :func:`embed_metadata` wrote, or None."""
    model = tfl.Model.GetRootAs(bytearray(Path(model_file).read_bytes()), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == METADATA_KEY:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None


def _name(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")
