"""Recipes as small frozen dataclasses: a recipe is data, so it hashes into the artifact key.

One verb applies them (``deepfake_sdk.export(model, target, precision=...)`` or
``quantization=Int8Config(...)``); each converter reads the fields it understands.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Union

from ..errors import UsageError
from ..targets import get_target


# "static": ranges fixed at export from calibration crops; "dynamic": measured per inference;
# "float": no activation is quantized, INT8-stored weights are dequantized once and the
# arithmetic is float (where a runtime has no run-time scheme that keeps the weight grid).
ACTIVATION_SCHEMES = ("static", "dynamic", "float")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class Int8Config:
    """INT8 weights and activations, calibrated on real face crops.

    The L2-norm and the head stay in float: quantizing them clips the large logits of
    confident faces (see the toolchain notes), and they cost nothing to run.
    ``activations="static"`` fixes every activation range at export from the calibration crops;
    ``"dynamic"`` measures each Linear's input range per inference (weights are still INT8,
    per channel). Each target's row in ``sdk/targets.py`` names the scheme that passes the
    parity gate there: on PT2E targets the static XNNPACK/LiteRT kernels also quantize every
    Linear's *output* to one INT8 scale, and DINOv2's outlier channels then cost 0.97 Pearson.
    """

    per_channel: bool = True  # one weight scale per output channel
    activations: str = "static"  # "static" | "dynamic" | "float" (ACTIVATION_SCHEMES)
    # x86 CPUs without VNNI (AVX2/AVX-512) multiply u8 x s8 with VPMADDUBSW, whose int16 pair
    # sums saturate; ONNX then uses u8 weights (u8 x u8 kernels), OpenVINO 7-bit weights.
    # Measured on gend (618 crops, ONNX): flips 1.3% -> 0.5%.
    saturation_safe: bool = True
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    calibration_method: str = "minmax"  # "minmax" | "percentile" | "entropy"
    calibration_size: int = 64  # face crops used to measure activation ranges
    # ONNX dynamic recipe: one weight scale per block of this many input channels (MatMulNBits).
    block_size: int = 128
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Conv")
    # Attention's activation x activation products (Q.K^T, softmax.V) carry the outliers
    # that make full-INT8 ViTs collapse; by default only layers with weights are quantized.
    quantize_attention_matmuls: bool = False
    float_layers: tuple[str, ...] = ()  # node/layer names kept float (mixed precision)
    # The most sensitive layers (the converter's ranking on the float model) kept float in every
    # build, before any gate is consulted: for targets whose INT8 drifts on held-out faces while
    # passing the build gate (sdk/targets.py says where and why).
    min_float_layers: int = 0
    smoothquant_alpha: float | None = 0.5  # None: no SmoothQuant rescaling (quantization/smooth.py)
    keep_tail_float: bool = True  # L2-norm + head in float
    # The patch embedding's quantization error is added to every token and carried through all
    # blocks: on gend it alone moved Pearson from 0.9915 to 0.9951 (ONNX, 618 crops). Keeping the
    # first layer in higher precision is the usual default of mixed-precision recipes.
    keep_first_layer_float: bool = True

    precision = "int8"

    def __post_init__(self) -> None:
        """A recipe is checked when made, so a misspelt field fails here, not as a silently
        different build (an unknown activation scheme once meant static quantization)."""
        if self.activations not in ACTIVATION_SCHEMES:
            raise UsageError(f"Int8Config.activations={self.activations!r}; expected one of {ACTIVATION_SCHEMES}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise UsageError(f"Int8Config.calibration_method={self.calibration_method!r}; "
                             f"expected one of {CALIBRATION_METHODS}")
        for name in ("calibration_size", "block_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"Int8Config.{name} must be at least 1, not {getattr(self, name)}")
        if self.min_float_layers < 0:
            raise UsageError(f"Int8Config.min_float_layers must be >= 0, not {self.min_float_layers}")
        if self.smoothquant_alpha is not None and not 0.0 < self.smoothquant_alpha < 1.0:
            raise UsageError(f"Int8Config.smoothquant_alpha must lie in (0, 1) or be None, not {self.smoothquant_alpha}")

    def key(self) -> str:
        return _key(self)


@dataclass(frozen=True)
class W8Config:
    """Weight-only 8-bit (activations stay float): no calibration, smaller files, float math.
    Where a target supports it (Core ML), it is the safe fallback when W8A8 drifts."""

    per_channel: bool = True
    precision = "w8"

    def key(self) -> str:
        return _key(self)


@dataclass(frozen=True)
class FP16Config:
    precision = "fp16"

    def key(self) -> str:
        return _key(self)


@dataclass(frozen=True)
class FP32Config:
    precision = "fp32"

    def key(self) -> str:
        return _key(self)


QuantConfig = Union[Int8Config, W8Config, FP16Config, FP32Config]


def _key(cfg) -> str:
    body = json.dumps({"precision": cfg.precision, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:12]




def config_for(precision: str, target: str | None = None, activations: str | None = None,
               min_float_layers: int | None = None, weight_symmetric: bool | None = None) -> QuantConfig:
    """Default recipe of a precision name; for INT8, with the target's activation scheme and
    float floor unless the model names its own (``ModelSpec.int8_activations`` /
    ``ModelSpec.int8_float_floor`` / ``ModelSpec.int8_asymmetric_weights``)."""
    configs = {"int8": Int8Config(), "w8": W8Config(), "fp16": FP16Config(), "fp32": FP32Config()}
    if precision not in configs:
        raise UsageError(f"unknown precision {precision!r}; expected one of {sorted(configs)}")
    if precision == "int8" and target is not None:
        row = get_target(target)
        if activations is not None:
            require_scheme(target, activations)
        floor = row.int8_min_float_layers if min_float_layers is None else min_float_layers
        symmetric = Int8Config.weight_symmetric if weight_symmetric is None else weight_symmetric
        return Int8Config(activations=activations or row.int8_activations, min_float_layers=floor,
                          weight_symmetric=symmetric)
    return configs[precision]


def require_scheme(target: str, activations: str) -> None:
    """Refuse an INT8 activation scheme ``target``'s converter does not build (``Target.int8_schemes``),
    naming the ones it does, before anything is exported."""
    schemes = get_target(target).int8_schemes
    if activations not in schemes:
        raise UsageError(f"target {target!r} builds INT8 activations {', '.join(schemes)}, not {activations!r}")
