"""Every family's graph lowers on every target (issue 12): tiny random LFM and GenDF exported
FP32 and INT8 to each runnable target and compared with their PyTorch reference, and exported
to Core ML (which predicts only on macOS). LFM's Top-K is written without a sort
(``models.pooling.ranked_top_k``) because LiteRT cannot run the StableHLO sort ``topk`` becomes."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from deepfake_sdk.building.export import export
from deepfake_sdk.models.factory import create_model
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.runtimes.base import runtime_class, runtime_for
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.zoo import get_spec

from conftest import augmented_crops
from tinymodel import register_families

NAMES = register_families()
RUNNABLE = [t for t in TARGETS if TARGETS[t].predicts_on_linux and runtime_class(t).is_available()]


def _reference(name: str):
    spec = get_spec(name)
    model = create_model(spec, pretrained=False)
    with torch.no_grad():  # a random head with spread-out logits, so agreement means something
        for n, p in model.named_parameters():
            if n.startswith("head."):
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return spec, model.eval()


@pytest.mark.parametrize("target", RUNNABLE)
@pytest.mark.parametrize("family", sorted(NAMES))
def test_each_family_exports_and_matches_its_reference(family, target, astronaut_crop, tmp_path):
    spec, model = _reference(NAMES[family])
    crops = augmented_crops(astronaut_crop, spec.preprocessing.size, 16)
    x = to_batch(crops, spec.preprocessing)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    fp32 = export(model, target, "fp32", out=tmp_path / "fp32", spec=spec)
    assert np.abs(np.asarray(runtime_for(fp32).run(x)) - ref).max() < 1e-3
    int8 = export(model, target, "int8", calibration=crops, out=tmp_path / "int8", spec=spec)
    got = np.asarray(runtime_for(int8).run(x))
    assert np.isfinite(got).all() and got.shape == ref.shape
    assert np.corrcoef(got[:, 1] - got[:, 0], ref[:, 1] - ref[:, 0])[0, 1] > 0.9


@pytest.mark.skipif(importlib.util.find_spec("coremltools") is None, reason="coremltools is not installed")
@pytest.mark.parametrize("family", sorted(NAMES))
def test_each_family_exports_to_core_ml(family, astronaut_crop, tmp_path):
    spec, model = _reference(NAMES[family])
    crops = augmented_crops(astronaut_crop, spec.preprocessing.size, 8)
    artifact = export(model, "coreml", "int8", calibration=crops, out=tmp_path / "coreml", spec=spec)
    assert artifact.model_file.exists() and artifact.manifest["precision"] == "int8"
