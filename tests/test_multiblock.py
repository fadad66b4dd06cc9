"""GenD's multi-block head (issue 29): the encoder's block summaries, the head on them, the cached
features it trains on, the logistic fit, the validation report, and the default chosen by it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepfake_sdk.models.gend.model import BlockNormHead, GenD
from deepfake_sdk.models.backbones.vit import VisionTransformer
from deepfake_sdk.training import validation
from deepfake_sdk.training.data import Sample
from deepfake_sdk.training.features import block_summaries
from deepfake_sdk.training.linear import fit_logistic
from deepfake_sdk.zoo import Preprocessing, get_family, get_spec, list_models, resolve

from conftest import augmented_crops, tiny_vit_config


def _vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(tiny_vit_config()).eval()


def test_block_summaries_are_each_blocks_cls_row_and_patch_mean():
    vit, x = _vit(), torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        got = vit.summaries(x)
        tokens, want = vit.embed(x), []
        for block in vit.encoder.layer:
            tokens = block(tokens)
            want += [tokens[:, 0], tokens[:, 1:].mean(1)]
        assert got.shape == (3, 2 * len(vit.encoder.layer), 64)
        assert torch.allclose(got, torch.stack(want, 1), atol=1e-6)
        assert torch.allclose(vit.summaries(x, patch_means=False), got[:, ::2])
        cls = vit(x)  # the default readout is untouched: the final-normalised CLS
        assert cls.shape == (3, 64) and torch.allclose(cls, vit.forward_tokens(x)[:, 0])
    with pytest.raises(ValueError, match="readout"):
        vit.read_blocks("every-other")


@pytest.mark.parametrize("readout", ["blocks", "blocks+patches"])
def test_a_multi_block_gend_reads_every_block_in_one_pass(readout):
    model, x = GenD(_vit(), readout=readout).eval(), torch.randn(2, 3, 56, 56)
    per_block = 2 if readout == "blocks+patches" else 1
    assert isinstance(model.head, BlockNormHead) and model.head.linear.in_features == per_block * 2 * 64
    with torch.no_grad():
        rows = model.backbone.summaries(x, patch_means=per_block == 2)
        want = model.head.linear(torch.nn.functional.normalize(rows, dim=-1).flatten(1))
        logits, feats = model.logits_and_features(x)
        assert torch.allclose(model(x), want, atol=1e-5) and torch.allclose(logits, want, atol=1e-5)
        assert torch.allclose(feats.norm(dim=-1), torch.ones(2), atol=1e-5)
        assert model.explain(x).shape == (2, 4, 4)  # one cell per 14-px patch of the 56-px crop
    assert model.export_hints().blocks == "backbone.encoder"  # what PT2E targets trace: it returns the summaries


def test_the_logistic_fit_reaches_the_optimum_of_scikit_learns_objective():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20))
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    w = rng.uniform(0.5, 2.0, 300)
    fitted = fit_logistic(x, y, w, c=0.5)
    p = 1 / (1 + np.exp(-fitted.decision(x)))
    grad_coef = fitted.coef + 0.5 * ((w * (p - y))[:, None] * x).sum(0)  # d/dw of 0.5|w|^2 + C sum s_i loss_i
    grad_bias = 0.5 * (w * (p - y)).sum()
    assert np.abs(grad_coef).max() < 1e-3 and abs(grad_bias) < 1e-3
    assert fitted.coef[0] > 5 * np.abs(fitted.coef[1:]).max()  # it found the informative feature
    weight, bias = fitted.two_class()
    logits = torch.from_numpy(x).float() @ weight.T + bias
    assert np.allclose((logits[:, 1] - logits[:, 0]).numpy(), fitted.decision(x), atol=1e-4)
    stronger = fit_logistic(x, y, w, c=0.01)
    assert np.linalg.norm(stronger.coef) < np.linalg.norm(fitted.coef)


def _samples(n_groups: int, per_group: int, families=("faceswap", "diffusion")) -> list[Sample]:
    out = []
    for g in range(n_groups):
        label = g % 2
        family = families[g // 2 % len(families)] if label else "real"
        out += [Sample(f"{g}_{k}.jpg", label, f"src{g % 5}", f"src/{g}", family) for k in range(per_group)]
    return out


def test_the_validation_report_gives_intervals_per_family_beside_the_control():
    samples = _samples(40, 3)
    rng = np.random.default_rng(1)
    labels = np.array([s.label for s in samples])
    scores = labels + rng.normal(0, 0.8, len(labels))
    rep = validation.report(samples, scores, metadata_scores=rng.random(len(labels)))
    assert set(rep) == {"overall", "faceswap", "diffusion"}
    for row in rep.values():
        low, high = row["ci95"]
        assert low <= row["auc"] <= high and high - low > 0.01
        assert "metadata_control" in row and row["real"] == 60
    assert rep["faceswap"]["fake"] + rep["diffusion"]["fake"] == rep["overall"]["fake"]
    one_group = [Sample(s.path, s.label, s.source, "same", s.family) for s in samples]
    auc = validation.auc_with_interval(one_group, scores, np.ones(len(samples), bool))
    assert auc["ci95"] == [auc["auc"], auc["auc"]]  # resampling whole groups: one group cannot vary
    assert "| model | overall |" in validation.table({"m": rep})


def test_block_features_are_computed_once_and_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPFAKE_SDK_CACHE", str(tmp_path))
    vit = _vit()
    crops = augmented_crops(np.full((56, 56, 3), 128, np.uint8), 56, 70)
    pp = Preprocessing(size=56)
    first = block_summaries(vit, crops, pp, "tiny")
    assert first.shape == (70, 4, 64)
    monkeypatch.setattr(vit, "summaries", lambda *a, **k: pytest.fail("a cached crop was recomputed"))
    assert torch.equal(block_summaries(vit, crops, pp, "tiny"), first)
    assert torch.equal(block_summaries(vit, crops[:64], pp, "tiny"), first[:64])  # per-chunk keys


def test_universe_weights_cap_each_source_and_balance_the_labels():
    from deepfake_sdk.models.gend.train_blocks import BlocksConfig, Universe

    keys = ["big:0"] * 900 + ["small:0"] * 100 + ["fakes:1"] * 200 + ["gen:1"] * 50
    labels = np.array([0] * 1000 + [1] * 250)
    generated = np.array([False] * 1200 + [True] * 50)
    universe = Universe(None, torch.zeros(0), labels, np.arange(1250), keys, generated)
    w = universe.weights(np.arange(1250), BlocksConfig(per_source_cap=400))
    assert np.isclose(w[labels == 0].sum(), w[labels == 1].sum())
    assert np.isclose(w[:900].sum() / w[900:1000].sum(), 4.0)  # 900 crops weigh as 400 against 100
    assert np.isclose(w[1200] / w[1000], 2.0)  # a generated fake counts twice


def _validation_auc(base: str) -> float | None:
    spec = get_spec(f"{base}-fp32")
    try:
        return json.loads(spec.card_path.read_text())["validation"]["overall"]["auc"]
    except (OSError, KeyError, TypeError):
        return None


def test_the_default_gend_is_the_measured_variant_best_on_validation():
    """``gend-fp32``/``gend-int8`` are fixed in code; this checks the cards still agree with that
    choice: the best validation AUC among GenD variants whose INT8 numerics are recorded."""
    family = get_family("gend")
    variants = {get_spec(n).base_name for n in list_models("gend-*-fp32") if get_spec(n).family == "gend"}
    measured = {v: _validation_auc(v) for v in variants if family.numerics_record(v).is_file()}
    scored = {v: auc for v, auc in measured.items() if auc is not None}
    assert scored, "no GenD card reports a validation AUC"
    best = max(scored, key=scored.get)
    assert resolve("gend-fp32") == f"{best}-fp32" and resolve("gend-int8") == f"{best}-int8"


def test_the_threshold_faces_are_scored_by_heads_that_never_saw_them(monkeypatch):
    from deepfake_sdk.models.gend import train_blocks as tb

    samples = [Sample(f"{i}.jpg", 0, f"pool{i % 7}", f"g{i}", "real") for i in range(40)]
    samples += [Sample(f"f{i}.jpg", 1, "fakes", f"h{i}", "faceswap") for i in range(20)]
    crops = type("Crops", (), {"samples": samples})()
    universe = tb.Universe(crops, torch.randn(60, 4, 8), np.array([s.label for s in samples]), np.arange(60),
                           [f"{s.source}:{s.label}" for s in samples], np.zeros(60, bool))
    pool = np.arange(40)
    seen = []
    real_fit = tb.fit

    def recording_fit(universe, crop_idx, readout, c, cfg):
        seen.append(set(crop_idx.tolist()))
        return real_fit(universe, crop_idx, readout, c, cfg)

    monkeypatch.setattr(tb, "fit", recording_fit)
    scores = tb.crossfit_scores(universe, pool, "blocks+patches", 1.0, tb.BlocksConfig(crossfit_parts=3))
    assert len(seen) == 3 and np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    for trained in seen:
        held = [i for i in pool if i not in trained]
        assert held and set(range(40, 60)) <= trained  # each fit leaves out its part of the pool, only that
    assert set().union(*[set(pool) - t for t in seen]) == set(pool.tolist())  # every pool face scored once
