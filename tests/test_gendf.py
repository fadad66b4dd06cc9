"""GenDF (issue 12): the discontinuity map, the head's size, the invariant augmentation, the
losses, and a tiny GenDF through every runnable target."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_sdk.models.gendf.model import GenDF, GenDFHead, discontinuity_map, neighbour_discontinuity
from deepfake_sdk.models.gendf.train import (GenDFConfig, discontinuity_loss, invariant_augment, patch_masks,
                                             redistribution_loss)
from deepfake_sdk.training.items import BLEND, CROP, Items

from conftest import tiny_vit_config


def test_the_head_of_a_vit_b_stays_under_the_parameter_budget():
    head = GenDFHead(768)
    assert sum(p.numel() for p in head.parameters()) == 123_270 <= 300_000


def test_a_continuous_grid_has_no_discontinuity_and_a_pasted_square_has_a_ridge():
    g, d = 8, 4
    flat = torch.nn.functional.normalize(torch.ones(1, g, g, d), dim=-1)
    assert torch.allclose(discontinuity_map(*neighbour_discontinuity(flat)), torch.zeros(1, g, g), atol=1e-6)
    pasted = flat.clone()
    pasted[:, 2:5, 2:5] = torch.nn.functional.normalize(torch.tensor([1.0, -1.0, 1.0, -1.0]), dim=0)
    dmap = discontinuity_map(*neighbour_discontinuity(pasted))[0]
    assert dmap[2, 2] > 0 and dmap[1, 2] > 0, "both sides of the boundary light up"
    assert dmap[3, 3] == 0 and dmap[7, 7] == 0, "inside the square and far from it: continuous"


def test_the_augmentation_leaves_the_classifiers_logit_difference_alone():
    head = GenDFHead(64)
    z = torch.randn(16, 128)
    moved = invariant_augment(z, head.fake_direction(), 0.5)
    assert not torch.allclose(moved, z)
    assert torch.allclose((moved - z) @ head.fake_direction(), torch.zeros(16), atol=1e-5)


def test_the_contrastive_loss_pulls_real_pairs_and_pushes_pairs_across_a_blend_boundary():
    cfg = GenDFConfig()
    g = 4
    continuous = torch.zeros(2, g, g - 1), torch.zeros(2, g - 1, g)
    masks = torch.zeros(2, g, g)
    masks[1, :, 2:] = 1.0  # the right half of the second face is blended: horizontal pairs (.,1)-(.,2) cross
    labels, blend = torch.tensor([0, 1]), torch.tensor([False, True])
    flat_loss = discontinuity_loss(*continuous, masks, labels, blend, cfg)
    assert flat_loss.item() == pytest.approx(cfg.margin), "continuous everywhere: only the boundary pairs pay"
    ridge = torch.zeros(2, g, g - 1)
    ridge[1, :, 1] = 1.0
    assert discontinuity_loss(ridge, continuous[1], masks, labels, blend, cfg).item() == pytest.approx(0.0)
    real_break = torch.zeros(2, g, g - 1)
    real_break[0] = 1.0
    assert discontinuity_loss(real_break, continuous[1], masks, labels, blend, cfg) > flat_loss


def test_redistribution_wants_centred_separated_class_means():
    cfg = GenDFConfig()
    labels = torch.tensor([0, 0, 1, 1])
    centred = torch.tensor([[-1.0], [-1.0], [1.0], [1.0]])
    assert redistribution_loss(centred, labels, cfg).item() == pytest.approx(0.0)
    assert redistribution_loss(centred + 3, labels, cfg) > 0
    assert redistribution_loss(centred * 0.1, labels, cfg) > 0


def test_patch_masks_average_each_blend_mask_over_the_patches():
    masks = np.zeros((2, 112, 112), np.uint8)
    masks[1, :56] = 255
    items = Items(np.zeros((2, 224, 224, 3), np.uint8), np.array([0, 1]), np.ones(2), np.arange(2),
                  np.array([CROP, BLEND]), masks)
    grid = patch_masks(items, np.arange(2), 14)
    assert grid.shape == (2, 14, 14) and grid[0].max() == 0
    assert torch.all(grid[1, :7] == 1) and torch.all(grid[1, 7:] == 0)


@pytest.fixture(scope="module")
def tiny_gendf():
    from deepfake_sdk.models.backbones.vit import VisionTransformer

    torch.manual_seed(0)
    model = GenDF(VisionTransformer(tiny_vit_config())).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)
    return model


def test_a_tiny_gendf_explains_with_its_discontinuity_map(tiny_gendf):
    x = torch.randn(2, 3, 98, 98)
    heat = tiny_gendf.explain(x)
    assert heat.shape == (2, 7, 7) and torch.all(heat >= 0)
    assert set(tiny_gendf.trained_state_dict()) == {f"head.{k}" for k in tiny_gendf.head.state_dict()}
