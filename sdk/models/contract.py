"""The model contract: the one shape every detector family gives the rest of the SDK.

Converters, quantizers, the parity gate and the runtimes know a model only through this:
``forward`` gives logits, :meth:`DetectorModel.logits_and_features` gives logits and the unit
feature in one pass, :meth:`DetectorModel.export_hints` says which part INT8 may touch and how
(the layers that stay float, the LayerNorm -> Linear pairs SmoothQuant folds), and
:meth:`DetectorModel.fix_input_size` bakes the deployment size in. No module outside a family's
folder names a ViT's (or a CNN's) submodules.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ExportHints:
    """What INT8 export needs to know about a model, in the model's own module names.

    ``quantized``: the submodule whose weight layers INT8 covers; everything outside it (the
    L2-norm and the head) stays float, since quantizing the tail clips large logits.
    ``stem``: modules at the start of ``quantized`` (patch embedding, pre-norm) kept float when
    a recipe keeps its first layer float: their error is added to every token downstream.
    ``blocks``: the submodule after the stem; PT2E targets export it alone in that case, fed
    by the float stem. ``smoothing``: LayerNorm -> the Linears it feeds, for SmoothQuant.
    """

    quantized: str
    stem: tuple[str, ...] = ()
    blocks: str | None = None
    smoothing: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def smoothing_pairs(self) -> dict[str, list[str]]:
        return {norm: list(linears) for norm, linears in self.smoothing}

    def inside(self, module_name: str) -> bool:
        """Whether ``module_name`` lies in the quantized part."""
        return module_name == self.quantized or module_name.startswith(self.quantized + ".")

    def in_stem(self, module_name: str) -> bool:
        return any(module_name == s or module_name.startswith(s + ".") for s in self.stem)


class DetectorModel(nn.Module):
    """Base of every family's full-precision model: ``forward(pixels) -> logits (B, 2)``,
    class 1 is *fake*; pixels are preprocessed as the zoo spec says."""

    # What :meth:`explain` draws ("patch-attribution", "salience", ...); empty: no heatmap.
    heatmap_kind: str = ""

    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, h, w)`` evidence of *fake* on a grid that tiles the crop exactly (cell ``(i, j)``
        covers ``crop/h`` pixels from ``i*crop/h``), larger = more fake; see ``deepfake_sdk.inference.explain``."""
        raise NotImplementedError(f"{type(self).__name__} draws no heatmap")

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the unit-norm feature the head reads, from one forward pass."""
        raise NotImplementedError

    def export_hints(self) -> ExportHints:
        raise NotImplementedError

    def fix_input_size(self, size: int) -> None:
        """Prepare for inputs of ``size`` px only (e.g. pre-resize position embeddings), so
        exported graphs hold no resize. Default: nothing to do."""

    def fold_for_inference(self) -> None:
        """Fold what inference need not compute apart (BatchNorm into its convolution) into the
        layers before it. Exporters run on the folded copy: converters that fold on their own
        (OpenVINO) rename the fused nodes, and quantizers then lose the module paths they are told
        to keep float or quantize by. Default: nothing to fold."""

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors training changes (what a family ships); default: all of them."""
        return {name: t.detach().clone() for name, t in self.state_dict().items()}
