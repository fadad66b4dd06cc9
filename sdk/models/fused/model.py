"""The fused reference: each member detector on the same crop, margins combined by one rule.

The input is normalised as the entry's spec says (GenDF's CLIP statistics); each member reads it
through an exact per-channel affine to its own statistics. The output is ``(0, fused margin)``,
so ``softmax`` gives ``sigmoid(fused margin)``: with the ``max`` rule, the larger of the
members' P(fake). The entry has no graph of its own to export: the family is a composite
(``serving.py``), so ``fused-int8`` runs the members' artifacts and exporters refuse it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ...zoo import ModelSpec, get_spec
from ..contract import DetectorModel
from ..factory import create_model
from .rules import combine
from .serving import DEFAULT_RULE, adapters_for, fusion_rule


class Fused(DetectorModel):
    """``forward(pixels) -> (B, 2)`` logits ``(0, rule(member margins))``; class 1 is *fake*."""

    heatmap_kind = "deciding member"

    def __init__(self, members: list[DetectorModel], adapters: list[tuple[list[float], list[float]]],
                 rule: str = DEFAULT_RULE):
        super().__init__()
        combine(torch.zeros(1, 1), rule)  # an unknown rule fails here, not on the first face
        self.members = nn.ModuleList(members)
        self.rule = rule
        for i, (scale, shift) in enumerate(adapters):
            self.register_buffer(f"scale{i}", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
            self.register_buffer(f"shift{i}", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def member_inputs(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return [pixels * getattr(self, f"scale{i}") + getattr(self, f"shift{i}") for i in range(len(self.members))]

    def margins(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(members, B)``: each member's fake-minus-real logit."""
        logits = [m(x) for m, x in zip(self.members, self.member_inputs(pixels))]
        return torch.stack([l[:, 1] - l[:, 0] for l in logits])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return _as_logits(combine(self.margins(pixels), self.rule))

    def logits_and_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.logits_and_features(x) for m, x in zip(self.members, self.member_inputs(pixels))]
        margins = torch.stack([l[:, 1] - l[:, 0] for l, _ in outs])
        return _as_logits(combine(margins, self.rule)), F.normalize(torch.cat([f for _, f in outs], 1), dim=-1)

    @torch.no_grad()
    def explain(self, pixels: torch.Tensor) -> torch.Tensor:
        """Per face, the map of the member with the largest margin (the one that decided a ``max``
        score), on the finest member grid (coarser grids repeated cell by cell, still tiling the
        crop exactly)."""
        inputs = self.member_inputs(pixels)
        maps = [m.explain(x) for m, x in zip(self.members, inputs)]
        side = max(g.shape[-1] for g in maps)
        maps = [g.repeat_interleave(side // g.shape[-1], -2).repeat_interleave(side // g.shape[-1], -1) for g in maps]
        deciding = self.margins(pixels).argmax(0)
        return torch.stack(maps)[deciding, torch.arange(pixels.shape[0])]

    def export_hints(self):
        raise UsageError("a fused entry has no graph of its own to export: export its members "
                         f"({', '.join(type(m).__name__ for m in self.members)}); fused-int8 runs their artifacts")

    def fix_input_size(self, size: int) -> None:
        for m in self.members:
            m.fix_input_size(size)

    def fold_for_inference(self) -> None:
        for m in self.members:
            m.fold_for_inference()

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # a rule: the members ship their own tensors


def _as_logits(margin: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.zeros_like(margin), margin], 1)


def build(spec: ModelSpec, pretrained: bool = True) -> Fused:
    """The family's builder: the parts' references (``arch``'s ``parts``) and the card's rule."""
    rule = fusion_rule(spec) if pretrained else DEFAULT_RULE
    members = [create_model(get_spec(name), pretrained=pretrained) for name in dict(spec.arch)["parts"]]
    return Fused(members, adapters_for(spec), rule).eval()
