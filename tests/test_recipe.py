"""GenD's recipe end to end on a tiny model: held-out folds, baselines, the budget mode, the card."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from deepfake_sdk.training.baselines import METADATA_FEATURES, LogisticProbe, metadata_features
from deepfake_sdk.training.data import Sample
from deepfake_sdk.training.folds import make_folds, real_pool, with_siblings

from tinymodel import register


def _samples() -> list[Sample]:
    out = []
    for source, family, n_real, n_fake in [("swapper", "faceswap", 5, 5), ("deepfacelive_photos", "real", 6, 0),
                                           ("deepfacelive_swaps", "faceswap", 0, 6), ("gan", "gan_full_synthesis", 0, 8),
                                           ("diffuse", "diffusion", 2, 6), ("photos_a", "real", 40, 0),
                                           ("photos_b", "real", 30, 0), ("photos_c", "real", 400, 0)]:
        out += [Sample(f"{source}/r{i}", 0, source, f"{source}/g{i}", "real") for i in range(n_real)]
        out += [Sample(f"{source}/f{i}", 1, source, f"{source}/g{i}", family) for i in range(n_fake)]
    return out


def test_folds_hold_out_whole_sources_and_never_train_on_the_real_pool():
    samples = _samples()
    pool = set(real_pool(samples, size=50))
    assert pool and pool <= {"photos_a", "photos_b"}, "real-only sources; the large one and siblings keep training"
    folds, final = make_folds(samples, source_folds={"swaps": ("deepfacelive_swaps",)})
    by_name = {f.name: f for f in folds}
    assert {"family:faceswap", "family:gan_full_synthesis", "family:diffusion", "source:swaps"} <= set(by_name)
    for fold in [*folds, final]:
        train_sources = {samples[i].source for i in fold.train}
        test_sources = {samples[i].source for i in fold.test}
        assert not train_sources & pool, fold.name
        assert not train_sources & set(fold.held_out_sources), fold.name
        assert pool <= test_sources | (set() if fold.kind != "all" else pool)
    swap = by_name["family:faceswap"]
    assert {"swapper", "deepfacelive_swaps", "deepfacelive_photos"} <= set(swap.held_out_sources), "siblings go together"
    assert all(samples[i].family in ("faceswap", "real") for i in swap.test)
    assert set(by_name["source:swaps"].held_out_sources) == {"deepfacelive_photos", "deepfacelive_swaps"}
    assert with_siblings(["dfdc_video_aaronchong888"]) == ["dfdc_crops_aaronchong888", "dfdc_video_aaronchong888"]
    assert {samples[i].source for i in final.test} == pool


def test_logistic_probe_and_metadata_features(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 1, (50, 3)), rng.normal(1, 1, (50, 3))])
    y = np.r_[np.zeros(50), np.ones(50)]
    p = LogisticProbe().fit(x, y).predict(x)
    assert p[50:].mean() > 0.7 > 0.3 > p[:50].mean()
    from PIL import Image

    Image.new("L", (40, 30), 128).save(tmp_path / "a.png")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "b.jpg", quality=80)
    feats = metadata_features([Sample("a.png", 1, "s", "g"), Sample("b.jpg", 0, "s", "g")], tmp_path)
    names = dict(zip(METADATA_FEATURES, feats.T))
    assert feats.shape == (2, len(METADATA_FEATURES))
    assert list(names["greyscale"]) == [1.0, 0.0] and list(names["png"]) == [1.0, 0.0] and names["jpeg_q_luma"][1] > 0
    assert names["aspect"][0] == pytest.approx(40 / 30)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """24 packaged faces in three sources (one of them a real-only pool candidate)."""
    from deepfake_sdk.quantization.calibration import write_packaged_set
    from deepfake_sdk.zoo import get_spec

    folder = write_packaged_set(tmp_path_factory.mktemp("recipe") / "data", 24, get_spec(register()).preprocessing)
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    for i, row in enumerate(rows):
        row["source"] = "pool_photos" if row["label"] == "real" and i % 3 == 0 else row["source"]
        row["manipulation"] = "faceswap:self-blend" if row["label"] == "fake" else "none"
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_budget_recipe_writes_tensors_and_a_card_with_held_out_numbers(tiny_data, tmp_path):
    """``deepfake-sdk train`` with the budget mode: folds, baselines, threshold, card, tensors."""
    from safetensors.torch import load_file

    from deepfake_sdk.cli import main
    from deepfake_sdk.zoo import get_spec

    spec = get_spec(register().replace("int8", "fp32"))
    tiny = get_spec(register())
    out = tmp_path / "weights"
    # the tiny spec ships no weights: give it a file name to write
    from dataclasses import replace

    from deepfake_sdk import zoo

    zoo._REGISTRY[spec.name] = replace(spec, weights="tinygend.safetensors")
    try:
        assert main(["train", spec.name, "--data", str(tiny_data), "--epochs", "1", "--budget-blocks", "1",
                     "--out", str(out)]) == 0
    finally:
        zoo._REGISTRY[spec.name] = spec
    card = json.loads((out / "tinygend.card.json").read_text())
    assert card["recipe"] == "budget" and card["config"]["budget_blocks"] == 1 and tiny.family == "gend"
    held = card["held_out"]
    assert len(held["real_pool_sources"]) == 1 and held["real_pool_faces"] > 0
    fold = next(f for f in held["folds"] if f["name"] == "family:faceswap")
    assert {"auc", "auc_frozen_probe", "auc_metadata_control"} <= set(fold)
    assert held["cached_vs_fp32_scores"]["pearson"] > 0.99, "budget scores track the FP32 model"
    assert 0 < card["threshold"]["value"] <= 1.0 and card["threshold"]["chosen_at_fpr"] == 0.05
    assert card["trained_on"]["device"] == "cpu" and card["trained_tensors"]["sha256"]
    tensors = load_file(str(out / "tinygend.safetensors"))
    assert "head.linear.weight" in tensors and all("norm" in k or k.startswith("head.") for k in tensors)


def test_training_device_and_autocast_choice(monkeypatch):
    """CUDA when there is one (never needs a GPU to test), bf16 only where it is fast."""
    from deepfake_sdk import device as device_module
    from deepfake_sdk.training import runs as recipe  # where every recipe's device choice lives

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert recipe.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert recipe.resolve_device("auto").type == "cpu" and recipe.resolve_device("cpu").type == "cpu"
    for features, fast in [(frozenset({"avx2"}), False), (frozenset({"avx2", "avx512_bf16"}), True),
                           (frozenset({"amx_bf16"}), True)]:
        info = device_module.DeviceInfo("Linux", "x86_64", "x", 2, features)
        monkeypatch.setattr(recipe, "device_info", lambda info=info: info)
        assert recipe.autocast(torch.device("cpu")).fast_dtype == torch.bfloat16
        assert recipe.autocast(torch.device("cpu"))._enabled is fast, features


def test_an_int8_recipe_refuses_fields_it_does_not_know_when_made():
    from deepfake_sdk.errors import UsageError
    from deepfake_sdk.quantization.config import Int8Config

    assert Int8Config(activations="dynamic").activations == "dynamic"
    for bad in ({"activations": "statik"}, {"calibration_method": "mse"}, {"calibration_size": 0},
                {"block_size": 0}, {"min_float_layers": -1}, {"smoothquant_alpha": 1.5}):
        with pytest.raises(UsageError, match=next(iter(bad))):
            Int8Config(**bad)
