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
    keep_tail_float: bool = True  # L2-norm + head in float

    precision = "int8"

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


QuantConfig = Union[Int8Config, FP16Config, FP32Config]


def _key(cfg) -> str:
    body = json.dumps({"precision": cfg.precision, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def config_for(precision: str) -> QuantConfig:
    """Default recipe of a precision name."""
    configs = {"int8": Int8Config(), "fp16": FP16Config(), "fp32": FP32Config()}
    if precision not in configs:
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(configs)}")
    return configs[precision]
