"""PT2E INT8 for the export-based targets (ExecuTorch, TFLite, Core ML).

Only the model's quantized part (``export_hints().quantized``) is exported and quantized; the
converted graph is then swapped back into the model, so the L2-norm and head stay float.
(Annotating "everything but the head" through the quantizers' module filters is unreliable: on
some graphs it silently quantizes nothing.)
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torchao.quantization.pt2e import allow_exported_model_train_eval
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from ..models.contract import DetectorModel


class ConvertedGraph(nn.Module):
    """A converted PT2E graph standing in for the submodule it was exported from."""

    def __init__(self, graph: nn.Module):
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


def quantize_part(model: DetectorModel, quantizer, calibration: np.ndarray, batch: int = 1,
                  fold_quantize: bool = True, keep_stem_float: bool = False,
                  float_layers: tuple[str, ...] = ()) -> nn.Module:
    """Copy of ``model`` whose quantized part is PT2E-quantized with ``quantizer`` on ``calibration``.

    ``calibration`` is preprocessed float32 ``(N, 3, H, W)``; the graph is exported for a fixed
    ``batch`` (mobile runtimes run one face at a time). ``fold_quantize=False`` keeps weights
    as float constants behind Q/DQ pairs, which LiteRT's converter requires.
    ``keep_stem_float``: quantize only the hints' ``blocks``, fed by the float stem (a ViT's
    patch embedding; a model without ``blocks``, a CNN, keeps its stem modules float by name), whose error would be added to every token and carried through every
    block (TFLite on gend, 618 crops: logit RMSE 0.064 -> 0.056, flips 7 -> 6). Exporting the
    blocks alone leaves the stem out for every quantizer, with or without name filters.
    ``float_layers``: module names in ``model`` (``backbone.encoder.layer.3.mlp.fc2``) left
    unquantized, whatever the quantizer would have done (mixed precision; see ``KeepLayersFloat``).
    """
    if calibration is None or not len(calibration):
        raise ValueError("INT8 needs calibration crops")
    model = copy.deepcopy(model).eval()
    hints = model.export_hints()
    part = hints.blocks if keep_stem_float and hints.blocks else hints.quantized
    if keep_stem_float and not hints.blocks:  # no stem to export around (a CNN): strip the stem's annotations
        float_layers = tuple(float_layers) + tuple(hints.stem)
    inputs = _inputs_of(model, part, torch.from_numpy(calibration))
    graph = torch.export.export(model.get_submodule(part), (inputs[:batch],)).module()
    if float_layers:
        quantizer = KeepLayersFloat(quantizer, _relative_names(float_layers, part + "."))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(0, len(inputs) - batch + 1, batch):
            prepared(inputs[i : i + batch])
    converted = allow_exported_model_train_eval(convert_pt2e(prepared, fold_quantize=fold_quantize))  # callers may .eval() it
    model.set_submodule(part, ConvertedGraph(converted))
    return model


def _inputs_of(model: nn.Module, part: str, pixels: torch.Tensor) -> torch.Tensor:
    """What submodule ``part`` receives when ``model`` runs on ``pixels`` (captured by a hook)."""
    seen: list[torch.Tensor] = []

    def capture(_module, args):
        seen.append(args[0].detach())
        raise _Captured

    handle = model.get_submodule(part).register_forward_pre_hook(capture)
    try:
        with torch.no_grad():
            for i in range(len(pixels)):
                try:
                    model(pixels[i : i + 1])
                except _Captured:
                    pass
    finally:
        handle.remove()
    return torch.cat(seen)


class _Captured(Exception):
    """Stops a forward pass once the hooked submodule's input is seen."""


def _relative_names(layers: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """``backbone.encoder.layer.0.mlp.fc1`` -> ``layer.0.mlp.fc1``: the names the exported graph knows."""
    outside = [name for name in layers if not name.startswith(prefix)]
    if outside:
        raise ValueError(f"float_layers {outside} are not inside the quantized part ({prefix.rstrip('.')})")
    return tuple(name[len(prefix):] for name in layers)


def _owning_module(node) -> str | None:
    """Name of the innermost module a node of an exported graph was traced in."""
    stack = node.meta.get("nn_module_stack")
    return next(reversed(stack.values()))[0] if stack else None


class KeepLayersFloat:
    """Wraps any PT2E quantizer and strips its annotations from the nodes of named modules (and
    of the modules inside them).

    Names in an exported graph are relative to the exported submodule (``layer.3.mlp.fc2``), so
    the quantizers' own name filters, given the model's names, silently match nothing, and
    LiteRT's global config has no filter at all. Stripping after annotation works the same for
    the XNNPACK, LiteRT and Core ML recipes, and ``annotate`` fails loudly when a name matches
    no quantized node, so a misspelt layer cannot pass for float.
    """

    def __init__(self, quantizer, module_names: tuple[str, ...]):
        self.quantizer = quantizer
        self.module_names = frozenset(module_names)

    def transform_for_annotation(self, model):
        return self.quantizer.transform_for_annotation(model)

    def annotate(self, model):
        model = self.quantizer.annotate(model) or model
        stripped = set()
        for node in model.graph.nodes:
            owner = _owning_module(node) or ""
            names = [n for n in self.module_names if owner == n or owner.startswith(n + ".")]
            if names and node.meta.pop("quantization_annotation", None) is not None:
                stripped.update(names)
        missing = self.module_names - stripped
        if missing:
            raise ValueError(f"float_layers {sorted(missing)} match no quantized node of the exported graph")
        return model

    def validate(self, model) -> None:
        self.quantizer.validate(model)

    def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq) -> None:
        self.quantizer.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)
