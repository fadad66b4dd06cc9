"""Quantization recipes (frozen dataclass configs, torchao-style) and calibration data."""
from .config import FP16Config, FP32Config, Int8Config, QuantConfig, W8Config, config_for

__all__ = ["Int8Config", "W8Config", "FP16Config", "FP32Config", "QuantConfig", "config_for"]
