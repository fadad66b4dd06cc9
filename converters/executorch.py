"""ExecuTorch ``.pte`` lowered to XNNPACK (Android, iOS, embedded Linux CPUs).

INT8: the model's quantized part goes through PT2E with ``XNNPACKQuantizer`` (symmetric,
per-channel weights) and is swapped back beside the float head; by default (the target's row)
activations are quantized dynamically per inference (XNNPACK's qd8 x qc8w kernels: Linears and
full convolutions; a depthwise convolution has none and stays float). Static INT8 here also rounds each Linear's output to one scale: Pearson 0.975 vs
0.9997 dynamic on gend. The whole model is then exported at batch 1 and lowered with
``XnnpackPartitioner``. Ops XNNPACK does not take (LayerNorm, some copies) run in ExecuTorch's
portable kernels.
"""
from __future__ import annotations

import importlib.metadata

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
from executorch.exir import to_edge_transform_and_lower

from ..quantization.pt2e import quantize_part
from .base import ExportRequest, ExportResult, LogitsAndFeatures, example_input, float_parts, module_layer_sensitivity
from .base import Converter, quiet_tools



def export(request: ExportRequest) -> ExportResult:
    model = request.model
    details: dict = {}
    if request.precision == "int8":
        model, details = _quantize(model, request)
    elif request.precision != "fp32":
        raise ValueError(f"the executorch target writes fp32 or int8, not {request.precision!r}")
    wrapper = LogitsAndFeatures(model).eval()
    with torch.no_grad(), quiet_tools():
        program = torch.export.export(wrapper, (example_input(request.input_size, 1),))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    (request.out_dir / "model.pte").write_bytes(lowered.buffer)
    return ExportResult("model.pte", _tool_versions(), {**details, "batch": 1, "backend": "xnnpack"})


def _quantize(model, request: ExportRequest):
    cfg = request.quantization
    scheme = get_symmetric_quantization_config(is_per_channel=cfg.per_channel, is_dynamic=cfg.activations == "dynamic")
    # Run-time activations: the qd8 patterns, Linears and full convolutions (a ViT's exported
    # blocks have only Linears). Static: every op XNNPACK quantizes (convolutions, their ReLU6
    # and residual adds fused).
    static = cfg.activations == "static"
    quantizer = XNNPACKQuantizer().set_global(scheme)
    quantized = quantize_part(model, quantizer, request.calibration, keep_stem_float=cfg.keep_first_layer_float,
                              float_layers=cfg.float_layers)
    return quantized, {
        "engine": "pt2e", "quantizer": "XNNPACKQuantizer", "per_channel": cfg.per_channel,
        "activations": cfg.activations, "quantized": ["every XNNPACK-quantizable op"] if static else ["Linear"],
        "float": float_parts(model, cfg)}


def _tool_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "executorch": importlib.metadata.version("executorch")}


# float_layers are PyTorch module names, ranked by layer_sensitivity
CONVERTER = Converter(export=export, layer_sensitivity=module_layer_sensitivity)
