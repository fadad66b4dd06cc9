"""The converter interface and what every converter shares.

A converter turns a full-precision :class:`~deepfake_sdk.models.contract.DetectorModel` into
model file(s) inside a folder it is given, and returns the manifest fields only it knows (its
model file, tool versions, quantization details). ``deepfake_sdk.building.export`` does the rest: the
atomic folder, the calibration set, checksums and the shared manifest fields. Converters know a
model only through the contract: which part INT8 covers and what stays float come from its
``export_hints()``, never from module names written here.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models.contract import DetectorModel
from ..quantization.sensitivity import linear_sensitivity

INPUT_NAME = "pixels"
OUTPUT_NAMES = ("logits", "features")


@dataclass(frozen=True)
class ExportRequest:
    model: DetectorModel  # the full-precision reference, eval mode, input size fixed
    precision: str
    quantization: Any  # a quantization config dataclass
    calibration: np.ndarray | None  # (N, 3, H, W) float32, preprocessed like inference
    input_size: int
    out_dir: Path  # empty folder to write into


@dataclass(frozen=True)
class ExportResult:
    model_file: str
    tools: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Converter:
    """What one target's converter module offers; each module ends with ``CONVERTER = Converter(...)``
    and :func:`deepfake_sdk.converters.converter_for` returns it. The optional extras are declared
    here, None where a format lacks them, so callers test a field instead of probing a module."""

    export: Callable[[ExportRequest], ExportResult]
    # Per-layer SQNR (dB, lower = more damaged) ``(artifact_dir, calibration, model, config)``, keyed by
    # the names the converter accepts in ``Int8Config.float_layers`` (mixed precision).
    layer_sensitivity: Callable[[Path | None, np.ndarray, nn.Module, Any], dict[str, float]] | None = None
    # Write / read the app manifest inside the model file (ONNX metadata_props, TFLite metadata, Core ML).
    embed_metadata: Callable[[Path, dict], None] | None = None
    read_metadata: Callable[[Path], dict | None] | None = None
    # Adapt a model file for a browser engine in place (onnxruntime-web); returns what it changed.
    for_browser: Callable[[Path], dict] | None = None


def module_layer_sensitivity(artifact_dir: Path, calibration: np.ndarray, model: DetectorModel,
                             config: Any) -> dict[str, float]:
    """``layer_sensitivity`` of the converters whose ``float_layers`` are PyTorch module names:
    INT8 simulated per Linear on the (smoothed) float model; the artifact itself is not needed."""
    return linear_sensitivity(model, calibration, config)


class LogitsAndFeatures(nn.Module):
    """Export wrapper: ``pixels -> (logits, unit-norm feature)``, the contract's two outputs.

    Exposing the feature lets parity checks compare embeddings, not only scores. Its submodule
    is named ``model`` so exported nodes carry ``model.<module name>`` scopes.
    """

    def __init__(self, model: DetectorModel):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.logits_and_features(pixels)


def deployable(model: DetectorModel, size: int) -> DetectorModel:
    """A copy of ``model`` fixed to ``size`` px inputs (e.g. position embeddings pre-resized),
    its BatchNorms folded (``DetectorModel.fold_for_inference``)."""
    model = copy.deepcopy(model).eval()
    model.fix_input_size(size)
    model.fold_for_inference()
    return model


def float_parts(model: DetectorModel, config: Any) -> list[str]:
    """What an INT8 recipe leaves float, for the manifest: the stem (when the first layer stays
    float), the mixed-precision layers, and everything outside the quantized part."""
    hints = model.export_hints()
    stem = list(hints.stem) if config.keep_first_layer_float else []
    return [*stem, *config.float_layers, f"everything outside {hints.quantized} (L2-norm, head)"]


def example_input(size: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def quiet_tools():
    """The exporter and quantizer print pages of progress; keep them for failures only."""
    buf = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            yield
    except ImportError:
        raise  # export() turns it into a MissingDependencyError naming the extra
    except Exception as exc:
        raise RuntimeError(f"{exc}\n--- tool output ---\n{buf.getvalue()[-4000:]}") from exc
    finally:
        logging.disable(previous)


# Model files that carry the app manifest inside them (ONNX metadata_props, TFLite metadata,
# Core ML user-defined metadata) keep it as one JSON string under this key.
METADATA_KEY = "deepfake_sdk"
