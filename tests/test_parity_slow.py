"""INT8 vs the FP32 reference on the face crops of ../shared/data (slow: ~600 crops x 2 models)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import deepfake_sdk
from deepfake_sdk.metrics import roc_auc
from deepfake_sdk.training.data import build_crops

pytestmark = pytest.mark.slow


def test_int8_matches_fp32_on_real_faces(shared_data):
    crops = build_crops(shared_data)
    fp32 = deepfake_sdk.load("gend-fp32").score_crops(crops.images)
    int8_det = deepfake_sdk.load("gend-int8", calibration=shared_data, progress=False)
    int8 = int8_det.score_crops(crops.images)
    labels = crops.labels()
    report = {
        "n": int(len(labels)),
        "pearson": float(np.corrcoef(fp32, int8)[0, 1]),
        "max_abs_diff": float(np.abs(fp32 - int8).max()),
        "flip_rate": float(np.mean((fp32 >= 0.5) != (int8 >= 0.5))),
        "auc_fp32": roc_auc(labels, fp32),
        "auc_int8": roc_auc(labels, int8),
        "artifact_mb": int8_det.artifact.size_bytes() / 1e6,
    }
    print(json.dumps(report, indent=1))
    if os.environ.get("PARITY_REPORT"):
        with open(os.environ["PARITY_REPORT"], "w") as fh:
            json.dump(report, fh, indent=1)
    assert report["pearson"] >= 0.99
    assert abs(report["auc_fp32"] - report["auc_int8"]) <= 0.01
