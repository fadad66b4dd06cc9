"""Loading a family's trained tensors: checksum against the model card first, then safetensors.

Every family ships (or distils) a ``.safetensors`` file beside a ``.card.json`` that records its
SHA-256; a file altered or truncated after training is refused here with a
:class:`~deepfake_sdk.errors.ArtifactError`, never a traceback from inside safetensors.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import ArtifactError
from ..zoo import ModelSpec


def recorded_sha256(card: Path | None) -> str | None:
    """The SHA-256 the model card recorded for its tensors (``None`` without a card)."""
    if card is None or not card.is_file():
        return None
    try:
        return json.loads(card.read_text()).get("trained_tensors", {}).get("sha256")
    except (OSError, ValueError) as err:
        raise ArtifactError(f"model card {card.name} is unreadable: {err}") from err


def load_checked_tensors(spec: ModelSpec, missing_hint: str) -> dict[str, torch.Tensor]:
    """The spec's trained tensors, verified against its card; ``missing_hint`` says how to make them."""
    path = spec.weights_path
    if path is None or not path.is_file():
        name = path.name if path else spec.name
        raise ArtifactError(f"trained weights {name} are not in the package; {missing_hint}")
    expected = recorded_sha256(spec.card_path)
    if expected is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ArtifactError(
                f"{path.name} does not match its model card (sha256 {actual[:12]}…, card says "
                f"{expected[:12]}…): the file was altered or comes from another training run")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{path.name} is not a readable safetensors file: {err}") from err
