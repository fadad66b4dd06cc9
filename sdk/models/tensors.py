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
    """The spec's trained tensors, verified against its card, floats as FP32 (INT8-stored weights
    dequantized, :func:`pack_int8`); ``missing_hint`` says how to make them."""
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
        stored = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{path.name} is not a readable safetensors file: {err}") from err
    return unpack_int8(stored)


# --- INT8 storage of trained weights -------------------------------------------------------------
# A fully trained student (every weight, 3.4 M parameters) was 6.9 MB in FP16: too heavy for git and
# for a phone app's download. Its conv/linear weights are stored INT8, symmetric, one FP32 scale per
# output channel; the float reference is then the model on that grid, as the CLIP teacher's weights
# already are. Layers a family names (its early, finest-detail layers) stay FP16: on the gend-lite
# real pool INT8 storage of every conv drifts to Pearson 0.965, keeping stem + MBConv blocks 0-1
# FP16 gives 0.9992 (2/301 decision flips) against the FP16 weights.

SCALE_SUFFIX = "#int8_scale"


def _kept_float(key: str, keep_float: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in keep_float)


def pack_int8(state: dict[str, torch.Tensor], keep_float: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """``state`` ready for safetensors: weights of rank >= 2 as INT8 + per-output-channel scale
    (key ``<name>#int8_scale``), everything else (and every tensor under ``keep_float``) FP16."""
    packed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not value.is_floating_point():
            packed[key] = value.contiguous()
        elif key.endswith(".weight") and value.dim() >= 2 and not _kept_float(key, keep_float):
            flat = value.detach().float().flatten(1)
            scale = flat.abs().amax(1).clamp_min(1e-12) / 127.0
            packed[key] = (flat / scale[:, None]).round().clamp(-127, 127).to(torch.int8).view_as(value).contiguous()
            packed[key + SCALE_SUFFIX] = scale.contiguous()
        else:
            packed[key] = value.detach().half().contiguous()
    return packed


def unpack_int8(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`pack_int8`: FP32 tensors (INT8 weights times their scales); a file
    without scales (FP16 or FP32 tensors) comes back with its floats as FP32."""
    state: dict[str, torch.Tensor] = {}
    for key, value in stored.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(key + SCALE_SUFFIX)
        if scale is not None:
            if value.dtype != torch.int8 or scale.numel() != value.shape[0]:
                raise ArtifactError(f"stored weight {key} is not INT8 with one scale per output channel")
            value = value.float() * scale.float().view(-1, *([1] * (value.dim() - 1)))
        elif value.is_floating_point():
            value = value.float()
        state[key] = value
    return state


def stored_roundtrip(model: torch.nn.Module, state: dict[str, torch.Tensor], keep_float: tuple[str, ...]) -> None:
    """Put ``model`` on the grid its weights will be stored on, so what is measured is what ships."""
    model.load_state_dict(unpack_int8(pack_int8(state, keep_float)), strict=False)
