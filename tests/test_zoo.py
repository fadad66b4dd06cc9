from __future__ import annotations

import subprocess
import sys

import pytest

from deepfake_sdk.errors import UnknownModelError
from deepfake_sdk.zoo import ModelSpec, get_family, get_spec, list_families, list_models, register_model


def test_registry():
    assert {"gend-fp32", "gend-int8", "gend-dinov2-s14-int8"} <= set(list_models())
    spec = get_spec("gend-int8")
    assert spec.family == "gend" and spec.precision == "int8" and spec.preprocessing.size == 224
    assert spec.name in ("gend-clip-b16-blocks-int8", "gend-clip-b16-int8", "gend-dinov2-s14-int8"), \
        "gend-int8 is an alias of a variant"
    assert get_spec("gend-fp32").base_name == spec.base_name, "both aliases point at the same variant"
    assert "gend" in list_families() and get_family("gend").weights_dir.is_dir()
    assert get_spec("gend-dinov2-s14-fp32").weights_path.is_file()


def test_unknown_and_duplicate():
    with pytest.raises(UnknownModelError, match="Did you mean gend-fp32"):
        get_spec("gend-fp3")
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("gend-dinov2-s14-fp32", "gend", "x", None, "fp32"))
    with pytest.raises(UnknownModelError, match="family"):
        get_family("nope")


def test_import_registers_every_family_without_torch():
    """The zoo is complete after ``import deepfake_sdk``, and that import loads no torch."""
    code = "import sys, deepfake_sdk; assert 'gend-int8' in deepfake_sdk.list_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_threshold_comes_from_the_card_when_it_records_one(tmp_path):
    import json

    from deepfake_sdk.zoo import card_threshold

    card = tmp_path / "a.card.json"
    card.write_text(json.dumps({"threshold": {"value": 0.73, "chosen_at_fpr": 0.05}}))
    assert card_threshold(card) == 0.73
    card.write_text(json.dumps({"threshold": {"value": 1.5}}))  # not a probability: ignored
    assert card_threshold(card) == 0.5
    assert card_threshold(tmp_path / "none.json", default=0.4) == 0.4
