"""How a fused entry serves without a graph of its own (the family's
:class:`~deepfake_sdk.models.composite.Composite`): each part's backend (an INT8 artifact's runtime,
or a PyTorch reference) on its own copy of the batch, moved to the part's input statistics by an
exact per-channel affine, the parts' margins combined by the card's rule (``rules.py``, the same
function the PyTorch reference uses). Its card is read and checked here too: the rule and threshold
describe the part tensors it pins.
"""
from __future__ import annotations

import json

import numpy as np

from ...errors import ArtifactError, UsageError
from ...zoo import ModelSpec, get_spec
from ..tensors import recorded_sha256
from .rules import combine, margins_from_probs, probs_from_margins, renormalise

DEFAULT_RULE = "max"  # what an untrained (card-less) entry combines with: the rule the folds chose


def part_names(spec: ModelSpec) -> tuple[str, ...]:
    """The FP32 zoo names the entry fuses (its ``arch``'s ``parts``)."""
    return tuple(dict(spec.arch).get("parts", ()))


def fusion_card(spec: ModelSpec) -> dict | None:
    """The entry's card (rule, parts' tensors it was measured with), or None before training."""
    path = spec.card_path
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ArtifactError(f"model card {path.name} is unreadable: {err}") from err


def check_members(spec: ModelSpec, card: dict) -> None:
    """Refuse parts whose shipped tensors differ from those the card's rule and threshold were
    measured with (a part retrained since): the fused threshold would describe other models."""
    recorded = {m["name"]: m.get("sha256") for m in card.get("members", [])}
    for name in part_names(spec):
        shipped = recorded_sha256(get_spec(name).card_path)
        if recorded.get(name) != shipped:
            raise ArtifactError(
                f"{spec.name}'s card was measured with other {name} tensors (sha256 {str(recorded.get(name))[:12]}, "
                f"shipped {str(shipped)[:12]}): retrain it with `deepfake-sdk train {spec.name} --data <data folder>`")


def fusion_rule(spec: ModelSpec) -> str:
    """The rule the entry's card chose, its parts checked against the card first; the default
    rule for an entry not trained yet (no card)."""
    card = fusion_card(spec)
    if card is None:
        return DEFAULT_RULE
    check_members(spec, card)
    return card["fusion"]["rule"]


def adapters_for(spec: ModelSpec) -> list[tuple[list[float], list[float]]]:
    """Each part's input affine from the entry's preprocessing; parts must crop alike."""
    pp = spec.preprocessing
    out = []
    for name in part_names(spec):
        mpp = get_spec(name).preprocessing
        if (mpp.size, mpp.margin, mpp.template, mpp.jpeg_quality) != (pp.size, pp.margin, pp.template, pp.jpeg_quality):
            raise UsageError(f"{spec.name}: part {name} crops faces differently ({mpp}) from the entry ({pp})")
        out.append(renormalise(pp.mean, pp.std, mpp.mean, mpp.std))
    return out


class FusedBackend:
    """The parts' backends on their own copies of the batch, margins combined by ``rule``."""

    def __init__(self, parts: list, adapters: list[tuple[list[float], list[float]]], rule: str):
        combine(np.zeros((1, 1)), rule)  # an unknown rule fails on load, not on the first face
        self.parts, self.rule = parts, rule
        self.affine = [(np.float32(scale).reshape(1, -1, 1, 1), np.float32(shift).reshape(1, -1, 1, 1))
                       for scale, shift in adapters]
        self.name = parts[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        margins = []
        for part, (scale, shift) in zip(self.parts, self.affine):
            logits = np.asarray(part.run((batch * scale + shift).astype(np.float32)))
            margins.append(logits[:, 1] - logits[:, 0])
        fused = combine(np.stack(margins), self.rule)
        return np.stack([np.zeros_like(fused), fused], 1)


class FusedComposite:
    """The fused family's composite contract (``Family(composite=...)``)."""

    def check(self, spec: ModelSpec) -> None:
        fusion_rule(spec)  # a stale card is refused before any part is built

    def backend(self, spec: ModelSpec, parts: list) -> FusedBackend:
        return FusedBackend(parts, adapters_for(spec), fusion_rule(spec))

    def combine_probs(self, spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
        return probs_from_margins(combine(margins_from_probs(probs), fusion_rule(spec)))


COMPOSITE = FusedComposite()
