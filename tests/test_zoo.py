from __future__ import annotations

import pytest

from deepfake_sdk.errors import UnknownModelError
from deepfake_sdk.zoo import ModelSpec, get_spec, list_models, register_model


def test_registry():
    assert {"gend-fp32", "gend-int8"} <= set(list_models())
    assert list_models("gend-*") == ["gend-fp32", "gend-int8"]
    spec = get_spec("gend-int8")
    assert spec.family == "gend" and spec.precision == "int8" and spec.preprocessing.size == 224


def test_unknown_and_duplicate():
    with pytest.raises(UnknownModelError, match="Did you mean gend-fp32"):
        get_spec("gend-fp3")
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("gend-fp32", "gend", "x", None, "fp32"))
