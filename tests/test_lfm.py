"""LFM (issue 12): the fixed residual, Top-K pooling and its sort-free export form, rank-based
dropout, the exact salience attribution, training, the shipped tensors and every target."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_sdk.models.lfm.model import LFM, TopKPool, npr, rank_dropout_keep
from deepfake_sdk.models.pooling import ranked_top_k


def test_npr_is_x_minus_nearest_up_of_down():
    x = torch.randn(2, 3, 16, 16)
    expected = x - F.interpolate(x[:, :, ::2, ::2], scale_factor=2, mode="nearest")
    assert torch.equal(npr(x), expected)
    assert torch.all(npr(x)[:, :, ::2, ::2] == 0), "the kept pixel of every 2x2 cell has no residual"
    smooth = torch.ones(1, 3, 8, 8)
    assert torch.all(npr(smooth) == 0), "a flat image has no neighbouring-pixel residual"


@pytest.mark.parametrize("ties", [False, True])
def test_ranked_top_k_equals_torch_topk(ties):
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(3, 5, 100, generator=g)
    if ties:  # repeated values: each must be kept as often as topk keeps it
        flat = torch.round(flat * 2) / 2
    values, mask = ranked_top_k(flat, 16)
    assert torch.equal(values, flat.topk(16, dim=-1).values)
    assert torch.all(mask.sum(-1) == 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose((flat * mask).sum(-1), values.sum(-1))


def test_top_k_pool_evaluation_is_the_top_k_mean_and_training_drops_by_rank():
    maps = torch.randn(4, 8, 7, 7)
    pool = TopKPool(16).eval()
    assert torch.allclose(pool(maps), maps.flatten(2).topk(16, -1).values.mean(-1))
    keep = rank_dropout_keep(16)
    assert keep[0].item() == pytest.approx(0.9) and keep[-1].item() == pytest.approx(0.7)
    assert torch.all(keep[1:] < keep[:-1]), "lower ranks are dropped more often"
    pool.train()
    torch.manual_seed(0)
    trained = torch.stack([pool(maps) for _ in range(50)])
    assert not torch.allclose(trained[0], trained[1]), "dropout makes training pooling random"
    random_k = TopKPool(16, selection="random-k").train()
    assert random_k(maps).shape == (4, 8)
    with pytest.raises(ValueError, match="selection"):
        TopKPool(16, selection="median")


def test_salience_is_each_positions_exact_share_of_the_logit():
    torch.manual_seed(0)
    model = LFM().eval()
    x = torch.randn(2, 3, 224, 224)
    logits = model(x)
    heat = model.explain(x)
    assert heat.shape == (2, 28, 28)
    bias = model.head.bias[1] - model.head.bias[0]
    assert torch.allclose(heat.sum((1, 2)) + bias, logits[:, 1] - logits[:, 0], atol=1e-4)


def test_salience_map_is_aligned_with_the_crop():
    """A change confined to one corner of the crop moves only that corner's cells."""
    torch.manual_seed(0)
    model = LFM().eval()
    x = torch.randn(1, 3, 224, 224)
    y = x.clone()
    y[:, :, :48, :48] += torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        changed = (model.maps(x) - model.maps(y)).abs().sum(1)[0] > 1e-6
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert len(rows) and rows.max() < 8 and cols.max() < 8, "cells of 8 px: the 48 px corner + receptive field"


def test_folding_batchnorm_keeps_the_outputs():
    torch.manual_seed(0)
    model = LFM()
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64))  # non-trivial running statistics
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    before = model(x)
    model.fold_for_inference()
    assert torch.allclose(model(x), before, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_training_moves_every_weight_and_logs_a_finite_loss(astronaut_crop):
    from conftest import augmented_crops
    from deepfake_sdk.models.lfm.train import LFMConfig, fresh_model, train_lfm
    from deepfake_sdk.training.items import CROP, Items
    from deepfake_sdk.zoo import get_spec

    images = augmented_crops(astronaut_crop, 224, 8)
    items = Items(images, np.array([0, 1] * 4), np.ones(8), np.arange(8), np.full(8, CROP))
    cfg = LFMConfig(batch_size=4, threads=1)
    model, log = train_lfm(items, np.arange(8), cfg, get_spec("lfm-fp32").preprocessing, epochs=1)
    start = fresh_model(cfg)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert len(moved) == len(list(model.parameters()))
    assert log.steps and all(np.isfinite(s["loss"]) for s in log.steps)


def test_localization_loss_reads_blend_masks_flipped_with_the_image_and_skips_maskless_fakes():
    """The loss supervises the dense logit shares: a self-blend's mask (mirrored when the image
    is), zero on a real face; a fake with no known region adds nothing. A few steps on it alone
    raise the shares inside the mask above those outside."""
    from deepfake_sdk.models.lfm.train import localization_loss
    from deepfake_sdk.training.items import BLEND, CROP, Items

    torch.manual_seed(0)
    model = LFM().train()
    mask = np.zeros((4, 32, 32), np.uint8)
    mask[0, 4:20, 2:12] = 255  # the blend's region: left part of the crop
    items = Items(np.zeros((4, 64, 64, 3), np.uint8), np.array([1, 0, 1, 1]), np.ones(4), np.arange(4),
                  np.array([BLEND, CROP, CROP, BLEND]), mask)
    x = torch.randn(4, 3, 64, 64)
    no_flip = np.zeros(4, bool)
    only_maskless = localization_loss(model, model.maps(x[2:3]), items, np.array([2]), no_flip[:1])
    assert only_maskless.item() == 0.0
    flipped = np.array([True, False, False, False])
    assert not torch.isclose(localization_loss(model, model.maps(x), items, np.arange(4), flipped),
                             localization_loss(model, model.maps(x), items, np.arange(4), no_flip))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = localization_loss(model, model.maps(x), items, np.arange(4), no_flip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        shares = model.position_shares(model.maps(x[:1]))[0]  # (8, 8) for a 64 px crop
    inside = F.adaptive_avg_pool2d(torch.from_numpy(mask[:1]).float()[None] / 255, 8)[0, 0] > 0.5
    assert shares[inside].mean() > shares[~inside].mean()


def test_shipped_lfm_loads_checked_and_its_card_counts_its_parameters():
    import json

    from deepfake_sdk.models.factory import create_model
    from deepfake_sdk.zoo import get_spec

    spec = get_spec("lfm-fp32")
    model = create_model(spec)
    card = json.loads(spec.card_path.read_text())
    assert card["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert 0.0 < spec.threshold < 1.0 and spec.threshold == pytest.approx(card["threshold"]["value"])
    assert {"family", "source"} <= set(card["held_out"]["mean"]), "held-out family and source AUCs"


def test_the_card_records_the_command_that_ran_and_writes_where_asked(tmp_path):
    import argparse

    from deepfake_sdk.training.records import output_dir, train_command
    from deepfake_sdk.zoo import get_spec

    spec = get_spec("lfm-fp32")
    args = argparse.Namespace(model="lfm-fp32", data="../shared/data", seed=3, epochs=None, no_eval=True, out=None)
    assert train_command(args) == "deepfake-sdk train lfm-fp32 --data ../shared/data --seed 3 --no-eval"
    assert output_dir(args, spec) == spec.weights_path.parent
    args.epochs, args.no_eval, args.out = 2, False, str(tmp_path)
    assert train_command(args).endswith("--seed 3 --epochs 2") and output_dir(args, spec) == tmp_path
