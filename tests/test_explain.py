"""Heatmaps (issue 12): ``predict(img, explain=True)`` for every family, aligned with the face
crop, in the JSON rows, drawn by ``predict --explain``, and lighting up a self-blended region
more than the untouched face on faces no model trained on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import deepfake_sdk
from deepfake_sdk.cli import main
from deepfake_sdk.models.factory import create_model
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.training.sbi import self_blend
from deepfake_sdk.zoo import get_spec

FAMILIES = {"gend-fp32": "patch-attribution", "gendf-fp32": "discontinuity", "lfm-fp32": "salience",
            "gend-lite-fp32": "class-activation"}


@pytest.mark.parametrize("name", ["lfm-fp32", "gendf-fp32", "gend-fp32"])
def test_a_self_blended_region_lights_up_more_than_the_untouched_face(name, unseen_real_crops):
    """On real faces of the held-out real pool, blended with an altered copy of themselves inside
    a face-shaped mask: the map's mean inside the mask exceeds its mean outside, on average."""
    spec = get_spec(name)
    model = create_model(spec)
    rng = np.random.default_rng(0)
    blended, masks = zip(*(self_blend(c, rng, return_mask=True) for c in unseen_real_crops))
    with torch.inference_mode():
        grids = model.explain(torch.from_numpy(to_batch(np.stack(blended), spec.preprocessing))).numpy()
    inside, outside = [], []
    for grid, mask in zip(grids, masks):
        up = np.asarray(Image.fromarray(grid.astype(np.float32), mode="F").resize((224, 224), Image.Resampling.BILINEAR))
        m = mask[..., 0]
        inside.append(up[m > 0.5 * m.max()].mean())  # a blend may mix in only 25% of the altered copy
        outside.append(up[m < 0.02].mean())
    assert np.mean(inside) > np.mean(outside), f"{name}: inside {np.mean(inside):.4f} vs outside {np.mean(outside):.4f}"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_predict_explain_returns_a_heatmap_that_tiles_the_crop(name, samples):
    det = deepfake_sdk.load(name)
    pred = det.predict(samples / "astronaut.jpg", explain=True)
    heat = pred.faces[0].heatmap
    assert heat.kind == FAMILIES[name] and heat.source == "pytorch"
    side = heat.grid.shape[0]
    assert heat.grid.shape == (side, side) and heat.crop_size % side == 0, "whole cells tile the crop"
    assert heat.crop.shape == (heat.crop_size, heat.crop_size, 3)
    assert heat.upsampled().shape == (heat.crop_size, heat.crop_size)
    assert np.isfinite(heat.grid).all() and heat.grid.std() > 0
    row = json.loads(json.dumps(pred.to_dict()))
    assert row["faces"][0]["heatmap"]["shape"] == [side, side] and len(row["faces"][0]["heatmap"]["grid"]) == side
    assert "heatmap" not in det.predict(samples / "astronaut.jpg").to_dict()["faces"][0]


def test_an_int8_detector_draws_the_references_map(samples):
    det = deepfake_sdk.load("lfm-int8", target="onnx", progress=False)
    heat = det.predict(samples / "astronaut.jpg", explain=True).faces[0].heatmap
    reference = deepfake_sdk.load("lfm-fp32").predict(samples / "astronaut.jpg", explain=True).faces[0].heatmap
    assert heat.source == "pytorch" and np.allclose(heat.grid, reference.grid, atol=1e-5)


def test_cli_predict_explain_draws_each_face_over_its_crop(samples, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["predict", str(samples / "astronaut.jpg"), "--model", "lfm-fp32", "--explain", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    png = out / "astronaut.face0.png"
    assert row["faces"][0]["heatmap_png"] == str(png) and png.is_file()
    drawn = Image.open(png)
    assert drawn.size == (224, 224) and drawn.mode == "RGB"
    assert row["faces"][0]["heatmap"]["kind"] == "salience"
