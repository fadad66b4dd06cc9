"""TFLite / LiteRT ``.tflite`` (Android, Coral-class edge boxes, MCUs with LiteRT Micro).

Converted by ``litert_torch`` (no TensorFlow needed). INT8: the model's quantized part goes
through PT2E with LiteRT's ``PT2EQuantizer`` (symmetric, per-channel weights) and is swapped
back beside the float head. By default (the target's row) activations are dynamic: LiteRT's
static INT8 rounds each layer's output to one scale and DINOv2's outlier channels cost 0.95
Pearson (0.9995 dynamic); the converter is told the graph is PT2E-quantized so Q/DQ pairs
become INT8 kernels. Exported at batch 1.

Told the graph is *dynamically* quantized, LiteRT's converter gives every float weight it meets
an INT8 copy and a hybrid kernel, the layers the recipe keeps float included (the patch
embedding, mixed-precision layers, the head): :func:`restore_float_weights` puts their float
weights back after conversion, so the file is what its manifest says (on gendf the
mixed-precision search had been a no-op: 64 "float" layers, all INT8 in the file).
"""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import flatbuffers
import litert_torch
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as tfl
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.pt2e_quantizer_utils import QuantizationConfig
from litert_torch.quantize.quant_config import QuantConfig

from ..models.contract import DetectorModel
from ..quantization.pt2e import quantize_part
from .base import ExportRequest, ExportResult, LogitsAndFeatures, example_input, float_parts, module_layer_sensitivity
from .base import METADATA_KEY, Converter, quiet_tools



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
    if request.precision == "int8":
        kept = float_weights(request.model, request.quantization)
        details["float_weights_restored"] = restore_float_weights(request.out_dir / "model.tflite", kept)
    return ExportResult("model.tflite", _tool_versions(), {**details, "batch": 1})


def _quantize(request: ExportRequest):
    cfg = request.quantization
    scheme = weight_only_config(cfg.per_channel) if cfg.activations == "float" else \
        get_symmetric_quantization_config(is_per_channel=cfg.per_channel, is_dynamic=cfg.activations == "dynamic")
    quantizer = PT2EQuantizer().set_global(scheme)
    model = quantize_part(request.model, quantizer, request.calibration, fold_quantize=False,
                          keep_stem_float=cfg.keep_first_layer_float, float_layers=cfg.float_layers)
    details = {"engine": "pt2e", "quantizer": "litert PT2EQuantizer", "per_channel": cfg.per_channel,
               "activations": cfg.activations, "float": float_parts(request.model, cfg)}
    return model, QuantConfig(pt2e_quantizer=quantizer), details


def weight_only_config(per_channel: bool) -> QuantizationConfig:
    """INT8 weights (LiteRT's symmetric per-channel spec, levels -127..127) and no activation
    quantization, not marked dynamic: the converter stores each weight INT8 behind a constant
    ``DEQUANTIZE`` and the convolutions run in float. Marked dynamic, the same spec becomes
    LiteRT's hybrid kernels, which quantize every activation per image: on gend-lite those
    flipped 10 of 615 release faces, this 1 (its weights already lie on that grid)."""
    weight = get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=True).weight
    return QuantizationConfig(None, None, weight, None, None, False, False)


def float_weights(model: DetectorModel, cfg) -> list[np.ndarray]:
    """The weights of every conv and Linear an INT8 recipe keeps float, in LiteRT's layout (a
    Linear's ``(out, in)``; a conv's ``(out, kh, kw, in)``): everything outside the quantized
    part, the stem when the first layer stays float, and the mixed-precision layers."""
    hints = model.export_hints()

    def is_float(name: str) -> bool:
        return (not hints.inside(name) or (cfg.keep_first_layer_float and hints.in_stem(name))
                or any(name == f or name.startswith(f + ".") for f in cfg.float_layers))

    kept = []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and is_float(name):
            weight = module.weight.detach().float()
            kept.append((weight.permute(0, 2, 3, 1) if weight.dim() == 4 else weight).contiguous().numpy())
    return kept


def restore_float_weights(model_file: Path, kept: list[np.ndarray]) -> int:
    """Give back their float weights to the hybrid ops (float input, INT8 weight) whose INT8
    weight is a rounding of one of ``kept``; returns how many. A weight matches when its shape is
    the same and every value lies within half a step of its scale; the file is rewritten only when
    something was restored."""
    model = tfl.ModelT.InitFromPackedBuf(bytearray(Path(model_file).read_bytes()), 0)
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for weight in kept:
        by_shape.setdefault(weight.shape, []).append(weight)
    restored = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            if len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            tensor = graph.tensors[op.inputs[1]]
            if tensor.type != tfl.TensorType.INT8 or graph.tensors[op.inputs[0]].type != tfl.TensorType.FLOAT32:
                continue
            match = _float_original(model, tensor, by_shape.get(tuple(int(d) for d in tensor.shape), []))
            if match is not None:
                model.buffers[tensor.buffer].data = np.frombuffer(match.astype("<f4").tobytes(), np.uint8)
                tensor.type, tensor.quantization = tfl.TensorType.FLOAT32, None
                restored += 1
    if restored:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        Path(model_file).write_bytes(bytes(builder.Output()))
    return restored


def _float_original(model, tensor, candidates: list[np.ndarray]) -> np.ndarray | None:
    """The float weight ``tensor`` is an INT8 rounding of (one scale per channel, or one for the
    tensor), or None. The converter folds a multiply that precedes a Linear (a LayerNorm's scale)
    into its weight's input columns before rounding, so a Linear's candidate also matches with its
    columns rescaled by the factors that fit best, and is restored so (the fitted factors carry
    a few hundredths of a step of error, far below the rounding they replace)."""
    quant = tensor.quantization
    if not candidates or quant is None or quant.scale is None or len(quant.scale) not in (1, tensor.shape[0]):
        return None  # the converter's own INT8 copies are per tensor, the PT2E ones per channel
    values = np.asarray(model.buffers[tensor.buffer].data, np.uint8).view(np.int8).reshape(tuple(tensor.shape))
    scale = np.asarray(quant.scale, np.float32).reshape((-1,) + (1,) * (len(tensor.shape) - 1))
    rounded = values * scale
    for weight in candidates:
        if np.all(np.abs(rounded - weight) <= 0.5001 * scale + 1e-12):
            return weight
        if weight.ndim == 2:
            folded = weight * _column_factors(weight, rounded)
            if np.all(np.abs(rounded - folded) <= 0.75 * scale + 1e-12):
                return folded.astype(np.float32)
    return None


def _column_factors(weight: np.ndarray, rounded: np.ndarray) -> np.ndarray:
    """Least-squares factor per input column taking ``weight`` to ``rounded``."""
    w, r = weight.astype(np.float64), rounded.astype(np.float64)
    norms = np.sum(w * w, axis=0)
    return np.where(norms > 0, np.sum(w * r, axis=0) / np.where(norms > 0, norms, 1.0), 1.0)[None, :]


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


# float_layers are PyTorch module names, ranked by layer_sensitivity
CONVERTER = Converter(export=export, layer_sensitivity=module_layer_sensitivity, embed_metadata=embed_metadata, read_metadata=read_metadata)
