"""Losses, self-blending, grouped splits and metrics behave as their papers define them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepfake_sdk.metrics import roc_auc
from deepfake_sdk.training.data import Sample, clip_of
from deepfake_sdk.training.losses import alignment_loss, gend_loss, uniformity_loss
from deepfake_sdk.training.sbi import self_blend


def test_uniformity_closed_form():
    f = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # antipodal: squared distance 4
    assert math.isclose(uniformity_loss(f, t=2).item(), -8.0, rel_tol=1e-6)
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert uniformity_loss(same).item() > uniformity_loss(f).item()


def test_alignment_only_counts_same_label_pairs():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    assert alignment_loss(f, labels).item() == 0.0  # the only same-label pair is identical
    assert math.isclose(alignment_loss(f, torch.tensor([0, 0, 1])).item(), 2.0, rel_tol=1e-6)
    assert alignment_loss(f, torch.tensor([0, 1, 2])).item() == 0.0


def test_gend_loss_weights():
    torch.manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    logits, y = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    total, parts = gend_loss(logits, f, y)
    assert math.isclose(total.item(), parts["ce"] + 0.5 * parts["uniformity"] + 0.1 * parts["alignment"], rel_tol=1e-5)


def test_self_blend_changes_only_the_face(astronaut_crop):
    fake, mask = self_blend(astronaut_crop, np.random.default_rng(3), return_mask=True)
    diff = np.abs(fake.astype(int) - astronaut_crop.astype(int)).sum(-1)
    assert diff[mask[..., 0] < 1e-3].max() <= 1  # outside the mask: untouched (rounding only)
    assert diff[mask[..., 0] > 0.2].mean() > 2  # inside: visibly altered
    again = self_blend(astronaut_crop, np.random.default_rng(3))
    assert np.array_equal(fake, again), "seeded"


def test_clip_grouping():
    assert clip_of("Kim_Jarrey_0_f0137.png") == clip_of("Kim_Jarrey_0_f0008.png") == "Kim_Jarrey_0"
    assert clip_of("aapnvogymq-004-01.png") == "aapnvogymq"
    from deepfake_sdk.training.data import family_of, group_of

    row = {"path": "a/x_f0001.png", "source": "s", "label": "fake", "manipulation": "diffusion:SD 1.5", "notes": ""}
    assert group_of(row) == "s/x" and family_of(row) == "diffusion"
    assert group_of({**row, "notes": "cut from a grid; group=jpg/result_celeba1.jpg"}) == "s/jpg/result_celeba1.jpg"
    assert family_of({**row, "label": "real"}) == "real"


def test_auc():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


@pytest.mark.parametrize("budget", [None, 1])
def test_training_touches_only_layernorms_and_head(tiny_gend, astronaut_crop, budget):
    """Full recipe: every LayerNorm may change; budget: only the last block's and the final one."""
    from PIL import Image

    from deepfake_sdk.models.gend.train import TrainConfig, train_budget, train_full
    from deepfake_sdk.training.tokens import TokenCache
    from deepfake_sdk.training.items import Items, item_weights
    from deepfake_sdk.training.data import CropSet
    from deepfake_sdk.zoo import Preprocessing

    pp = Preprocessing(size=56)
    small = np.asarray(Image.fromarray(astronaut_crop).resize((56, 56)))
    samples = [Sample(f"{i}", i % 2, "s", f"g{i}", "faceswap" if i % 2 else "real") for i in range(6)]
    crops = CropSet(samples, np.stack([small] * 6), "x" * 64, [])
    before = {k: v.clone() for k, v in tiny_gend.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=4, probe_steps=5, budget_blocks=budget)
    if budget is None:
        train_full(tiny_gend, crops, np.arange(6), cfg, pp)
    else:
        start = len(tiny_gend.backbone.encoder.layer) - budget
        labels = crops.labels()
        items = Items(crops.images, labels, item_weights(samples, np.arange(6), labels, cfg), np.arange(6),
                      np.zeros(6, dtype=int))
        train_budget(tiny_gend, TokenCache(tiny_gend.backbone, crops.images, start, pp), items, np.arange(6), cfg)
    trained = set(tiny_gend.trained_state_dict())
    changed = {k for k, v in tiny_gend.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= trained
    assert any("norm" in k for k in changed) and "head.linear.weight" in changed
    assert all(k.startswith("head.") or "norm" in k or k.startswith("backbone.layernorm") for k in trained)
    if budget is not None:
        assert not any(k.startswith("backbone.encoder.layer.0.") for k in changed), "the frozen prefix stayed frozen"
        assert any(k.startswith("backbone.encoder.layer.1.") for k in changed)


def test_item_weights_balance_labels_and_upweight_generated_fakes():
    from deepfake_sdk.models.gend.train import TrainConfig
    from deepfake_sdk.training.items import item_weights

    samples = [Sample("r", 0, "a", "g", "real"), Sample("s", 1, "b", "g", "faceswap"),
               Sample("d", 1, "c", "g", "diffusion")]
    origin, labels = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1])  # item 1: a self-blend of the real
    w = item_weights(samples, origin, labels, TrainConfig(generated_weight=4.0))
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    assert w[3] == pytest.approx(4 * w[2]) and w[1] == pytest.approx(w[2])


def test_uniformity_of_a_single_sample_is_zero_not_nan():
    loss = uniformity_loss(torch.nn.functional.normalize(torch.randn(1, 4), dim=-1))
    assert loss.item() == 0.0


def test_items_train_as_degraded_copies_and_score_as_clean_crops(astronaut_crop):
    from deepfake_sdk.models.gend.train import TrainConfig
    from deepfake_sdk.training.items import BLEND, CROP, VIEW, degraded, items_for, weighted_for
    from deepfake_sdk.training.data import CropSet

    samples = [Sample(f"{i}", i % 2, "s", f"g{i}", "diffusion" if i % 2 else "real") for i in range(8)]
    crops = CropSet(samples, np.stack([astronaut_crop] * 8), "x" * 64, [])
    items = items_for(crops, np.arange(8), TrainConfig(degrade=0.5), np.random.default_rng(0))
    assert (items.kind == CROP).sum() == 8 and (items.kind == BLEND).sum() == 4
    views = items.origin[items.kind == VIEW]
    assert 0 < len(views) < 8 and np.array_equal(items.labels[items.kind == VIEW], crops.labels()[views])
    train = items.training()
    assert not set(np.flatnonzero((items.kind == CROP) & np.isin(items.origin, views))) & set(train), \
        "a crop with a degraded copy trains as the copy"
    assert len(train) == 8 + 4
    w = weighted_for(items, train).weights
    assert w[train][items.labels[train] == 0].sum() == pytest.approx(w[train][items.labels[train] == 1].sum())
    assert w.sum() == pytest.approx(len(train)) and not w[np.setdiff1d(np.arange(len(items)), train)].any()
    worse = degraded(astronaut_crop, np.random.default_rng(1))
    assert worse.shape == astronaut_crop.shape and np.abs(worse.astype(int) - astronaut_crop).mean() > 1
