"""PT2E static INT8 for the export-based targets (ExecuTorch, TFLite, Core ML).

Only the backbone is exported and quantized; the quantized graph is then swapped back into
the model, so the L2-norm and head stay float. (Annotating "everything but the head" through
the quantizers' module filters is unreliable: on some graphs it silently quantizes nothing.)
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


class _QuantizedBackbone(nn.Module):
    """Holds the converted PT2E graph where ``model.backbone`` was; forwards the CLS feature."""

    def __init__(self, graph: nn.Module, feature_dim: int):
        super().__init__()
        self.graph = graph
        self.feature_dim = feature_dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.graph(pixels)


def quantize_backbone(model: nn.Module, quantizer, calibration: np.ndarray, batch: int = 1,
                      fold_quantize: bool = True) -> nn.Module:
    """Copy of ``model`` whose backbone is PT2E-quantized with ``quantizer`` on ``calibration``.

    ``calibration`` is preprocessed float32 ``(N, 3, H, W)``; the graph is exported for a fixed
    ``batch`` (mobile runtimes run one face at a time). ``fold_quantize=False`` keeps weights
    as float constants behind Q/DQ pairs, which LiteRT's converter requires.
    """
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibration is None or not len(calibration):
        raise ValueError("static INT8 needs calibration crops")
    model = copy.deepcopy(model).eval()
    example = torch.from_numpy(calibration[:batch])
    graph = torch.export.export(model.backbone, (example,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(0, len(calibration) - batch + 1, batch):
            prepared(torch.from_numpy(calibration[i : i + batch]))
    converted = allow_exported_model_train_eval(convert_pt2e(prepared, fold_quantize=fold_quantize))  # callers may .eval() it
    model.backbone = _QuantizedBackbone(converted, model.backbone.feature_dim)
    return model
