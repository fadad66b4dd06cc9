"""Every target on a tiny random-init GenD: FP32 matches PyTorch, INT8 tracks it with the tail
float, artifacts carry their manifest. Core ML is converted and validated (prediction needs macOS)."""
from __future__ import annotations

import platform
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepfake_sdk.building.export import export
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.runtimes.base import runtime_class, runtime_for
from deepfake_sdk.targets import TARGETS
from deepfake_sdk.zoo import Preprocessing, get_spec

SIZE = 56
INT8 = replace(get_spec("gend-int8"), preprocessing=Preprocessing(size=SIZE))
FP32 = replace(INT8, name="gend-fp32", precision="fp32")
RUNNABLE = [t for t in TARGETS if TARGETS[t].predicts_on_linux and t != "onnx"]  # onnx: test_onnx_target


@pytest.fixture(scope="module")
def model():
    from conftest import tiny_vit_config
    from deepfake_sdk.models.gend.model import GenD
    from deepfake_sdk.models.backbones.vit import VisionTransformer

    torch.manual_seed(0)
    return GenD(VisionTransformer(tiny_vit_config())).eval()


@pytest.fixture(scope="module")
def crops(astronaut_crop):
    from conftest import augmented_crops

    return augmented_crops(astronaut_crop, SIZE, 16)


def _reference(model, crops):
    with torch.no_grad():
        return model(torch.from_numpy(to_batch(crops, INT8.preprocessing))).numpy()


@pytest.mark.parametrize("target", RUNNABLE)
def test_fp32_matches_pytorch(target, model, crops, tmp_path):
    if not runtime_class(target).is_available():
        pytest.skip(f"{target} runtime not installed")
    art = export(model, target, "fp32", out=tmp_path / "a", spec=FP32)
    runtime = runtime_for(art)
    batch = to_batch(crops[:4], INT8.preprocessing)
    assert np.abs(runtime.run(batch) - _reference(model, crops[:4])).max() < 1e-3
    feats = runtime.features(batch)
    assert feats is not None and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-3)


@pytest.mark.parametrize("target", RUNNABLE)
def test_int8_tracks_pytorch(target, model, crops, tmp_path):
    if not runtime_class(target).is_available():
        pytest.skip(f"{target} runtime not installed")
    art = export(model, target, "int8", calibration=crops, out=tmp_path / "a", spec=INT8)
    logits = runtime_for(art).run(to_batch(crops, INT8.preprocessing))
    ref = _reference(model, crops)
    margin, ref_margin = logits[:, 1] - logits[:, 0], ref[:, 1] - ref[:, 0]
    assert np.corrcoef(margin, ref_margin)[0, 1] > 0.9
    assert art.manifest["precision"] == "int8" and art.manifest["calibration"]["size"] == 16
    assert art.manifest["tools"]["torch"] == torch.__version__


def test_coreml_converts_and_validates_on_linux(model, crops, tmp_path):
    pytest.importorskip("coremltools")
    w8 = export(model, "coreml", "w8", out=tmp_path / "w8", spec=replace(FP32, precision="w8"))
    check = w8.manifest["quantization"]["linux_validation"]
    assert check["reloaded"] and check["outputs"] == ["logits", "features"]
    assert check["weight_dtypes"].get("int8", 0) >= 9  # every linear of the backbone + head
    assert check["op_counts"].get("constexpr_affine_dequantize", 0) > 0

    int8 = export(model, "coreml", "int8", calibration=crops, out=tmp_path / "int8", spec=INT8)
    details = int8.manifest["quantization"]
    assert details["linux_validation"]["op_counts"].get("quantize", 0) > 0
    assert details["simulated"]["label"].startswith("simulated")
    assert details["simulated"]["pearson"] > 0.9
    assert (int8.path / "model.mlpackage").is_dir() and any("mlpackage/" in f for f in int8.manifest["files"])


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML predicts on macOS")
def test_coreml_prediction_says_it_needs_macos():
    from deepfake_sdk.errors import MissingDependencyError
    import deepfake_sdk

    assert not runtime_class("coreml").is_available()
    with pytest.raises(MissingDependencyError, match="macOS"):
        deepfake_sdk.load("gend-int8", target="coreml")
