"""The one boundary where SDK results become JSON: manifests, references, reports, cards.

Results are computed with numpy, whose scalars (``np.bool_``, ``np.float32``, ``np.int64``)
the ``json`` module refuses, and a refusal there used to surface only on the machines whose
build took the branch that produced one (issue 9: a numpy bool from the parity check crashed
every OpenVINO build on Intel). Every writer goes through :func:`plain`, so a value of any
type either becomes plain Python here or fails here, naming where it sat, on every machine.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np


def plain(value: Any, where: str = "$") -> Any:
    """``value`` as plain JSON types: dict/list/str/int/float/bool/None, recursively.

    numpy scalars and arrays, tuples, sets, paths and dataclasses are converted; floats that
    JSON cannot hold (NaN, ±inf) become ``None``; anything else raises ``TypeError`` naming the
    path of the offending value (``$.mixed_precision.passed``).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), where)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value), where)
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(items)]
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON value")


def dumps(value: Any, **kwargs) -> str:
    """``json.dumps`` of :func:`plain` ``(value)``; strict: no NaN, no unknown types."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)


def is_plain(value: Any) -> bool:
    """True when ``value`` already is plain JSON (what a written manifest must hold)."""
    if value is None or type(value) in (bool, str, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False
