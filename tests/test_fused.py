"""The fused entry (issue 12): GenDF + LFM on the same crop, margins combined by one rule, the
same function on the PyTorch reference and on the members' artifacts; its card and guards."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepfake_sdk.zoo as zoo
from deepfake_sdk.building.build import ensure_artifact
from deepfake_sdk.inference.detector import TorchBackend
from deepfake_sdk.errors import ArtifactError, UsageError
from deepfake_sdk.models.factory import create_model
from deepfake_sdk.models.fused.model import Fused
from deepfake_sdk.models.fused.serving import FusedBackend, adapters_for, check_members, fusion_card, part_names
from deepfake_sdk.models.fused.rules import RULES, combine, renormalise
from deepfake_sdk.models.fused.train import best_rule, with_chosen
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.zoo import get_spec

from conftest import augmented_crops

SPEC = get_spec("fused-fp32")


@pytest.fixture(scope="module")
def random_fused() -> Fused:
    """Both members with random trained parts (the CLIP tower random too): the wiring, not the weights."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return create_model(SPEC, pretrained=False)


@pytest.fixture(scope="module")
def crops(astronaut_crop) -> np.ndarray:
    return augmented_crops(astronaut_crop, SPEC.preprocessing.size, 3)


@pytest.mark.parametrize("rule", RULES)
def test_a_rule_is_the_same_function_on_arrays_and_tensors(rule):
    margins = np.random.default_rng(0).normal(size=(2, 7))
    expected = margins.max(0) if rule == "max" else margins.mean(0)
    assert np.allclose(combine(margins, rule), expected)
    assert np.allclose(combine(torch.from_numpy(margins), rule).numpy(), expected)
    with pytest.raises(ValueError, match="unknown fusion rule"):
        combine(margins, "median")


def test_each_member_reads_the_crop_exactly_as_its_own_preprocessing_would(crops):
    lfm = get_spec("lfm-fp32").preprocessing
    scale, shift = renormalise(SPEC.preprocessing.mean, SPEC.preprocessing.std, lfm.mean, lfm.std)
    moved = to_batch(crops, SPEC.preprocessing) * np.float32(scale).reshape(1, 3, 1, 1) + \
        np.float32(shift).reshape(1, 3, 1, 1)
    assert np.allclose(moved, to_batch(crops, lfm), atol=1e-5)
    assert SPEC.preprocessing.mean != lfm.mean, "the members really normalise differently"


def test_the_fused_logit_is_the_rule_over_the_members_margins(random_fused, crops):
    pixels = torch.from_numpy(to_batch(crops, SPEC.preprocessing))
    with torch.no_grad():
        margins = random_fused.margins(pixels)
        logits, features = random_fused.logits_and_features(pixels)
        alone = [m(x) for m, x in zip(random_fused.members, random_fused.member_inputs(pixels))]
    assert margins.shape == (2, len(crops))
    assert torch.allclose(logits[:, 1], combine(margins, random_fused.rule)) and torch.all(logits[:, 0] == 0)
    p_members = torch.stack([torch.softmax(l, 1)[:, 1] for l in alone])
    assert torch.allclose(torch.softmax(logits, 1)[:, 1], p_members.amax(0), atol=1e-6), \
        "max rule: P(fake) is the larger member P(fake)"
    assert torch.allclose(features.norm(dim=1), torch.ones(len(crops)), atol=1e-5)


def test_the_heatmap_is_the_deciding_members_map_on_the_finest_grid(random_fused, crops):
    pixels = torch.from_numpy(to_batch(crops, SPEC.preprocessing))
    grids = random_fused.explain(pixels)
    side = SPEC.preprocessing.size // 8  # LFM's grid (GenDF's 14 x 14 is repeated 2 x 2)
    assert grids.shape == (len(crops), side, side)
    deciding = random_fused.margins(pixels).argmax(0)
    for i, member in enumerate(deciding.tolist()):
        own = random_fused.members[member].explain(random_fused.member_inputs(pixels)[member][i:i + 1])[0]
        step = side // own.shape[-1]
        assert torch.allclose(grids[i, ::step, ::step], own)


def test_artifact_path_combines_member_outputs_like_the_reference(random_fused, crops):
    """FusedBackend (what fused-int8 runs) fed the members as backends gives the reference's logits."""
    batch = to_batch(crops, SPEC.preprocessing)
    backend = FusedBackend([TorchBackend(m) for m in random_fused.members], adapters_for(SPEC), random_fused.rule)
    with torch.no_grad():
        expected = random_fused(torch.from_numpy(batch)).numpy()
    assert np.allclose(backend.run(batch), expected, atol=1e-4)
    with pytest.raises(ValueError, match="unknown fusion rule"):
        FusedBackend(backend.parts, adapters_for(SPEC), "median")


def test_a_fused_entry_has_no_artifact_of_its_own():
    with pytest.raises(UsageError, match="no artifact of its own to build.*gendf-int8, lfm-int8"):
        ensure_artifact(get_spec("fused-int8"), "onnx")


def test_a_fused_entry_drifts_wherever_a_member_does(monkeypatch):
    rows = {"lfm-int8": {"onnx": {"status": "DRIFT: flip_rate"}}}
    monkeypatch.setattr(zoo, "recorded_numerics", lambda spec: rows.get(spec.name, {}))
    assert zoo.recorded_drift(get_spec("fused-int8")) == {"onnx": "lfm-int8 DRIFT: flip_rate"}


def test_a_member_retrained_since_the_card_is_refused():
    card = {"members": [{"name": "gendf-fp32", "sha256": "0" * 64}, {"name": "lfm-fp32", "sha256": "1" * 64}]}
    with pytest.raises(ArtifactError, match="retrain it with `deepfake-sdk train fused-fp32"):
        check_members(SPEC, card)


def test_the_shipped_card_chose_its_rule_on_unseen_families_and_pins_the_shipped_members():
    card = fusion_card(SPEC)
    assert card is not None, "sdk/models/fused/weights/fused.card.json is missing: deepfake-sdk train fused-fp32"
    check_members(SPEC, card)  # the threshold was chosen with the tensors the members ship
    assert card["fusion"]["rule"] in RULES and 0 < SPEC.threshold < 1
    family = [r for r in card["held_out"]["folds"] if r["kind"] == "family"]
    assert len(family) >= 3 and card["fusion"]["rule"] == best_rule(family)
    mean = card["held_out"]["mean"]["family"]
    assert card["fusion"]["beats_each_member_on_unseen_families"] == (mean["auc"] > max(mean["auc_gendf"],
                                                                                           mean["auc_lfm"]))


def test_each_family_fold_scores_the_rule_the_other_folds_chose():
    rows = [{"kind": "family", "auc_max": a, "auc_mean": b} for a, b in [(0.9, 0.5), (0.8, 0.6), (0.7, 0.75)]]
    rows.append({"kind": "source", "auc_max": 0.1, "auc_mean": 0.2})
    chosen = with_chosen(rows, "max")
    assert [r["rule"] for r in chosen] == ["max", "max", "max", "max"]
    assert chosen[2]["auc"] == 0.7, "the third fold is scored with the others' choice, not its own best (mean)"
    rows[0]["auc_max"] = 0.1
    assert with_chosen(rows, "max")[1]["rule"] == "mean"


def test_the_card_is_json_the_cli_can_print():
    json.dumps(fusion_card(SPEC))
    assert SPEC.card_path.name == "fused.card.json" and get_spec("fused-int8").card_path == SPEC.card_path


def test_rules_are_compared_on_each_folds_held_out_margins():
    from deepfake_sdk.models.fused.train import compare_rules

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    fold = {"name": "family:a", "kind": "family", "index": np.arange(40), "labels": y, "metadata": rng.normal(size=40),
            "gendf": 3 * y + rng.normal(size=40), "lfm": rng.normal(size=40)}
    (alone,) = compare_rules([fold])
    assert alone["auc_gendf"] > 0.75 and alone["auc_gendf"] > alone["auc_lfm"] + 0.05
    assert np.isnan(alone["auc_learned"]), "no other family fold to fit the combiner on"
    other = {**fold, "name": "family:b", "gendf": 3 * y + rng.normal(size=40), "lfm": rng.normal(size=40)}
    rows = compare_rules([fold, other])
    assert all(0.0 <= r["auc_learned"] <= 1.0 for r in rows) and "gendf" not in rows[0]


def test_the_fused_reference_is_rebuilt_when_a_member_is_retrained(tmp_path):
    from deepfake_sdk.artifact import sha256_file
    from deepfake_sdk.verification.numerics import reference_key

    (tmp_path / "manifest.csv").write_text("path,label,source\n")
    key = reference_key(SPEC, tmp_path).split("-")
    members = [sha256_file(get_spec(m).weights_path)[:12] for m in part_names(SPEC)]
    assert key[1:] == members, "one digest per member's tensors"
    assert reference_key(get_spec("lfm-fp32"), tmp_path).split("-")[1:] == members[1:]
