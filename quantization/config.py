"""Recipes as small frozen dataclasses: a recipe is data, so it hashes into the artifact key.

One verb applies them (``deepfake_sdk.export(model, target, precision=...)`` or
``quantization=Int8Config(...)``); each converter reads the fields it understands.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Union


@dataclass(frozen=True)
class Int8Config:
    """Static INT8: weights and activations in 8 bit, calibrated on real face crops.

    The L2-norm and the head stay in float: quantizing them clips the large logits of
    confident faces (see the toolchain notes), and they cost nothing to run.
    """

    per_channel: bool = True  # one weight scale per output channel
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    calibration_method: str = "minmax"  # "minmax" | "percentile" | "entropy"
    calibration_size: int = 64  # face crops used to measure activation ranges
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Conv")
    # Attention's activation x activation products (Q.K^T, softmax.V) carry the outliers
    # that make full-INT8 ViTs collapse; by default only layers with weights are quantized.
    quantize_attention_matmuls: bool = False
    float_layers: tuple[str, ...] = ()  # node/layer names kept float (mixed precision)
    smoothquant_alpha: float | None = 0.5  # None: no SmoothQuant rescaling (quantization/smooth.py)
    keep_tail_float: bool = True  # L2-norm + head in float
    # The patch embedding's quantization error is added to every token and carried through all
    # blocks: on gend it alone moved Pearson from 0.9915 to 0.9951 (ONNX, 618 crops). Keeping the
    # first layer in higher precision is the usual default of mixed-precision recipes.
    keep_first_layer_float: bool = True

    precision = "int8"

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


def config_for(precision: str) -> QuantConfig:
    """Default recipe of a precision name."""
    configs = {"int8": Int8Config(), "w8": W8Config(), "fp16": FP16Config(), "fp32": FP32Config()}
    if precision not in configs:
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(configs)}")
    return configs[precision]
