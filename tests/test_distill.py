"""GenD-Lite: the EfficientNet-Lite0 port, the shipped student, and the distillation parts.

The full distillation (`deepfake-sdk distill`, about an hour on 2 cores) is not run here; its
parts are: the augmented views, the loss, the teacher-label cache and its projection, a resumed
training run, student resolution and the shipped weights' checks."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from deepfake_sdk.converters.base import deployable
from deepfake_sdk.errors import ArtifactError, UnknownModelError
from deepfake_sdk.imageio import load_image
from deepfake_sdk.models.backbones.efficientnet_lite import LITE0, LITE2, imagenet_classifier
from deepfake_sdk.models.factory import create_model
from deepfake_sdk.models.flops import model_macs
from deepfake_sdk.preprocess import to_batch
from deepfake_sdk.models.tensors import SCALE_SUFFIX, pack_int8, unpack_int8
from deepfake_sdk.models.gend_lite import distill as distill_module
from deepfake_sdk.models.gend_lite.distill import (CrossFittedTeacher, DistillConfig, TeacherLabels, agreement,
                                                   distill_loss, feature_projection, train_student)
from deepfake_sdk.training.data import CropSet, Sample
from deepfake_sdk.training.items import AUGMENTED, CROP, items_for
from deepfake_sdk.zoo import get_spec, student_spec

from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_student_resolves_from_backbone_or_zoo_name():
    assert student_spec("efficientnet-lite0").name == "gend-lite-efficientnet-lite0-fp32"
    assert student_spec("gend-lite-int8").name == "gend-lite-efficientnet-lite0-fp32"
    assert get_spec("gend-lite-int8").family == "gend-lite"
    with pytest.raises(UnknownModelError, match="students are registered on"):
        student_spec("resnet-50")


@pytest.mark.parametrize("variant", [LITE0, LITE2], ids=lambda v: v.name)
def test_efficientnet_port_keeps_imagenet_judgement(variant):
    """The ported ImageNet weights call the sample cat a cat (classes 281-285)."""
    net = imagenet_classifier(variant=variant).eval()
    img = load_image(SAMPLES / "cat_no_face.jpg").convert("RGB").resize((224, 224))
    x = (np.asarray(img, np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        top = net(torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))).argmax(-1).item()
    assert 281 <= top <= 285


def test_shipped_student_is_phone_size_and_loads_its_checked_tensors():
    """The distilled tensors ship (INT8 per channel + FP16 stem, 3.6 MB: under git's 5 MB line);
    their SHA-256 is checked against the card."""
    spec = get_spec("gend-lite-fp32")
    assert spec.weights_path.stat().st_size < 5_000_000
    model = create_model(spec)
    params = sum(p.numel() for p in model.parameters())
    assert params < 4_000_000 and model_macs(model, 224) < 0.5e9
    fresh = create_model(replace(get_spec("gend-lite-fp32"), weights=None))
    assert not torch.equal(model.head.linear.weight, fresh.head.linear.weight)
    p = torch.softmax(model(torch.zeros(1, 3, 224, 224)), -1)
    assert torch.allclose(p.sum(-1), torch.ones(1))


def test_int8_storage_keeps_the_stem_float_and_round_trips_onto_its_grid():
    """Weights go INT8 with one scale per output channel, the named stem and 1-D tensors FP16;
    unpacking returns FP32 within half a step of the original, and packing the unpacked tensors
    again changes nothing (the reference lies exactly on the stored grid)."""
    torch.manual_seed(0)
    state = {"stem.conv.weight": torch.randn(8, 3, 3, 3), "blocks.1.conv.weight": torch.randn(16, 8, 1, 1) * 3,
             "blocks.10.conv.weight": torch.randn(4, 16, 3, 3), "blocks.1.bn.bias": torch.randn(16),
             "blocks.1.bn.num_batches_tracked": torch.tensor(7)}
    packed = pack_int8(state, keep_float=("stem", "blocks.1"))
    assert packed["stem.conv.weight"].dtype == torch.float16
    assert packed["blocks.1.conv.weight"].dtype == torch.float16
    assert packed["blocks.10.conv.weight"].dtype == torch.int8  # "blocks.1" is not a prefix of block 10
    assert packed["blocks.10.conv.weight" + SCALE_SUFFIX].shape == (4,)
    assert packed["blocks.1.bn.num_batches_tracked"].dtype == torch.int64
    restored = unpack_int8(packed)
    assert set(restored) == set(state)
    w, r = state["blocks.10.conv.weight"], restored["blocks.10.conv.weight"]
    step = w.abs().flatten(1).amax(1) / 127
    assert r.dtype == torch.float32 and ((w - r).abs().flatten(1).amax(1) <= step / 2 + 1e-6).all()
    again = unpack_int8(pack_int8(restored, keep_float=("stem", "blocks.1")))
    assert torch.allclose(again["blocks.10.conv.weight"], r, atol=1e-6)


def test_int8_storage_with_a_scale_that_does_not_fit_is_refused():
    packed = pack_int8({"a.weight": torch.randn(4, 4)})
    packed["a.weight" + SCALE_SUFFIX] = torch.ones(3)
    with pytest.raises(ArtifactError, match="one scale per output channel"):
        unpack_int8(packed)


def test_student_weights_that_are_missing_are_named():
    spec = get_spec("gend-lite-fp32")
    bad = replace(spec, weights="missing.safetensors")
    with pytest.raises(ArtifactError, match="deepfake-sdk distill"):
        create_model(bad)


def test_student_weights_altered_after_training_are_refused(tmp_path, monkeypatch):
    spec = get_spec("gend-lite-fp32")
    folder = tmp_path / "weights"
    folder.mkdir()
    data = bytearray(spec.weights_path.read_bytes())
    data[-1] ^= 0xFF
    (folder / spec.weights).write_bytes(bytes(data))
    (folder / spec.card_path.name).write_bytes(spec.card_path.read_bytes())
    moved = replace(spec, weights=str(folder / spec.weights))
    assert moved.weights_path == folder / spec.weights
    with pytest.raises(ArtifactError, match="does not match its model card"):
        create_model(moved)


def test_distill_loss_vanishes_when_the_student_matches_the_teacher():
    cfg = DistillConfig()
    logits = torch.randn(4, 2, requires_grad=True)
    feats = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    labels, weights = torch.tensor([0, 1, 0, 1]), torch.ones(4)
    loss, parts = distill_loss(logits, feats, logits.detach(), feats, labels, weights, cfg)
    assert abs(parts["kl"]) < 1e-5 and abs(parts["cos"]) < 1e-5 and parts["ce"] > 0
    far, parts_far = distill_loss(-logits, -feats, logits.detach(), feats, labels, weights, cfg)
    assert parts_far["kl"] > 0.01 and parts_far["cos"] > 1.9
    far.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


class _CountingTeacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def logits_and_features(self, pixels):
        self.calls += len(pixels)
        m = pixels.mean(dim=(1, 2, 3))
        return torch.stack([m, -m], -1), torch.nn.functional.normalize(torch.stack([m, m + 1], -1), dim=-1)


def test_teacher_labels_are_computed_once_and_kept_on_disk():
    spec = replace(get_spec("gend-lite-fp32"), weights=None)
    images = np.random.default_rng(0).integers(0, 255, (5, 224, 224, 3), dtype=np.uint8)
    teacher = _CountingTeacher()
    labels = TeacherLabels(teacher, spec, torch.device("cpu"), batch=2)
    logits, feats = labels(images)
    assert logits.shape == (5, 2) and feats.shape == (5, 2) and teacher.calls == 5
    again, _ = labels(images[[4, 0]])
    assert teacher.calls == 5 and torch.equal(again, logits[[4, 0]])
    reopened = TeacherLabels(_CountingTeacher(), spec, torch.device("cpu"))
    assert torch.equal(reopened(images)[0], logits) and reopened.teacher.calls == 0
    labels.path.unlink()


class _WideTeacher(torch.nn.Module):
    """A teacher whose unit feature is wider than the cache keeps (as the multi-block one's is)."""

    def logits_and_features(self, pixels):
        m = pixels.mean(dim=(2, 3))
        return m[:, :2], torch.nn.functional.normalize(pixels[:, :, :64, :64].flatten(1)[:, :4096], dim=-1)


def test_a_wide_teacher_feature_is_cached_as_a_projection_that_keeps_its_cosines():
    spec = replace(get_spec("gend-lite-fp32"), weights=None)
    images = np.random.default_rng(2).integers(0, 255, (6, 224, 224, 3), dtype=np.uint8)
    images[3] = images[2] // 2 + images[3] // 2  # one pair with a clearly positive cosine
    teacher = _WideTeacher()
    labels = TeacherLabels(teacher, spec, torch.device("cpu"), batch=3, feature_dim=512)
    try:
        _, stored = labels(images)
        _, full = teacher.logits_and_features(torch.from_numpy(to_batch(images, spec.preprocessing)))
        assert stored.shape == (6, 512) and torch.allclose(stored.norm(dim=1), torch.ones(6), atol=1e-2)
        assert (full @ full.T)[2, 3] > 0.5
        error = (stored @ stored.T - full @ full.T).abs().max()
        assert error < 0.2, "a random projection to 512 dims keeps cosines within a few 1/sqrt(512)"
        assert "-d512" in labels.path.name
    finally:
        labels.path.unlink(missing_ok=True)


def _tiny_crops(n: int = 6) -> CropSet:
    face = load_image(SAMPLES / "astronaut_face.jpg").convert("RGB").resize((224, 224))
    base = np.asarray(face)
    samples = [Sample(f"{i}", i % 2, "s", f"g{i}", "faceswap" if i % 2 else "real") for i in range(n)]
    return CropSet(samples, np.stack([np.roll(base, 7 * i, axis=1) for i in range(n)]), "x" * 64, [])


def test_augmented_views_train_beside_their_crop_and_leave_other_recipes_draws_alone():
    crops = _tiny_crops()
    idx = np.arange(len(crops.samples))
    with_views = items_for(crops, idx, replace(DistillConfig(), degrade=0.0, views_per_crop=2), np.random.default_rng(0))
    views = np.flatnonzero(with_views.kind == AUGMENTED)
    assert len(views) == 12 and list(with_views.origin[views]) == [*idx, *idx]
    assert list(with_views.labels[views]) == [*crops.labels(), *crops.labels()]
    train = set(with_views.training().tolist())
    assert set(views) <= train and set(np.flatnonzero(with_views.kind == CROP)) <= train, "a view does not replace its crop"
    moved = [np.abs(with_views.images[v].astype(int) - crops.images[with_views.origin[v]]).mean() for v in views]
    assert min(moved) > 1.0, "every view changes the pixels (the teacher labels it anew)"
    again = items_for(crops, idx, replace(DistillConfig(), degrade=0.0, views_per_crop=2), np.random.default_rng(0))
    assert np.array_equal(again.images, with_views.images), "the same seed draws the same views"
    without = items_for(crops, idx, replace(DistillConfig(), degrade=0.0, views_per_crop=0), np.random.default_rng(0))
    n = len(without)
    assert np.array_equal(without.images, with_views.images[:n]) and not (without.kind == AUGMENTED).any()


class _FixedLabels:
    """Teacher outputs for a training test: fixed per item pixels, no teacher pass."""

    def __call__(self, images):
        m = torch.from_numpy(images.reshape(len(images), -1).mean(1, dtype=np.float64)).float() / 255
        return torch.stack([m, 1 - m], -1), torch.nn.functional.normalize(torch.stack([m, 1 - m, m * m], -1), dim=-1)


def test_a_distillation_resumed_from_its_checkpoint_trains_as_an_unbroken_one(tmp_path, monkeypatch):
    spec = get_spec("gend-lite-fp32")
    crops = _tiny_crops(4)
    cfg = replace(DistillConfig(), batch_size=2, degrade=0.0, sbi_per_real=0, views_per_crop=0, threads=1, device="cpu")
    items = items_for(crops, np.arange(4), cfg, np.random.default_rng(0))
    idx = items.training()
    targets = _FixedLabels()(items.images[idx])
    unbroken, log = train_student(spec, items, idx, targets, cfg, epochs=2, checkpoint=tmp_path / "a.pt")
    assert log["steps"] == 4 and log["resumed_at_epoch"] == 0

    save = distill_module._save_checkpoint

    def save_then_stop(*args):
        save(*args)
        raise KeyboardInterrupt  # the session ends after the first epoch's checkpoint

    monkeypatch.setattr(distill_module, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_student(spec, items, idx, targets, cfg, epochs=2, checkpoint=tmp_path / "b.pt")
    monkeypatch.setattr(distill_module, "_save_checkpoint", save)
    resumed, log_b = train_student(spec, items, idx, targets, cfg, epochs=2, checkpoint=tmp_path / "b.pt")
    assert log_b["resumed_at_epoch"] == 1 and log_b["steps"] == 4
    a, b = unbroken.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    other = items_for(crops, np.arange(3), cfg, np.random.default_rng(0))
    _, log_c = train_student(spec, other, other.training(), _FixedLabels()(other.images[other.training()]), cfg, epochs=2,
                             checkpoint=tmp_path / "b.pt")
    assert log_c["resumed_at_epoch"] == 0, "another run's checkpoint (other items) is not resumed"


def test_a_cross_fitted_teacher_judges_each_item_by_the_head_that_never_saw_its_source():
    from deepfake_sdk.models.gend.train_blocks import readout_features
    from deepfake_sdk.training.linear import LinearFit

    summaries = torch.randn(4, 24, 8)
    dim = readout_features(summaries, "blocks+patches").shape[1]
    heads = [LinearFit(np.full(dim, 1.0, np.float32), 0.0, 1, True), LinearFit(np.full(dim, -1.0, np.float32), 0.5, 1, True)]
    teacher = CrossFittedTeacher(heads, {"a": 0, "b": 1}, "blocks+patches", feature_projection(dim, 16))
    logits, feats = teacher(summaries, ["a", "b", "b", "a"])
    x = readout_features(summaries, "blocks+patches")
    expected = [heads[k].decision(x[i : i + 1])[0] for i, k in enumerate([0, 1, 1, 0])]
    assert np.allclose((logits[:, 1] - logits[:, 0]).numpy(), expected, atol=1e-4)
    assert torch.allclose(torch.softmax(logits, -1)[:, 1], torch.sigmoid(torch.tensor(expected)), atol=1e-5)
    assert feats.shape == (4, 16) and torch.allclose(feats.norm(dim=1), torch.ones(4), atol=1e-5)


def test_agreement_counts_flips_at_each_models_threshold():
    s, t = np.array([0.1, 0.6, 0.9, 0.4]), np.array([0.2, 0.7, 0.8, 0.9])
    out = agreement(s, t, 0.5, 0.5)
    assert out["decision_flips"] == 0.25 and out["faces"] == 4 and 0 < out["pearson"] < 1


def test_front_door_distill_reaches_the_students_family(monkeypatch):
    import deepfake_sdk
    from deepfake_sdk.models.gend_lite import distill as recipe

    seen = {}
    monkeypatch.setattr(recipe, "distill", lambda *a, **k: seen.update(args=a, config=k) or {"ok": 1})
    assert deepfake_sdk.distill("gend-fp32", "efficientnet-lite0", "data", epochs=1) == {"ok": 1}
    assert seen["args"][:2] == ("gend-fp32", "gend-lite-efficientnet-lite0-fp32") and seen["config"] == {"epochs": 1}


def test_the_cnn_student_asks_for_its_own_int8_activation_scheme_per_target():
    """The student's spec, not the target rows, picks its activations: run-time on the targets
    whose INT8 convolutions keep the stored weight grid, float arithmetic on INT8-stored weights
    on LiteRT (its run-time hybrid kernels drifted), static W8A8 on Core ML (its one INT8 route);
    a ViT teacher keeps the rows' schemes."""
    from deepfake_sdk.quantization.config import config_for

    spec = get_spec("gend-lite-int8")
    targets = ("onnx", "openvino", "executorch", "tflite", "coreml")
    recipes = {t: config_for("int8", t, **spec.int8_recipe_overrides(t)) for t in targets}
    assert {t: r.activations for t, r in recipes.items()} == {
        "onnx": "dynamic", "openvino": "dynamic", "executorch": "dynamic", "tflite": "float", "coreml": "static"}
    assert config_for("int8", "tflite").activations == "dynamic"  # the row's, which the student overrides
    assert get_spec("gend-int8").int8_recipe_overrides("tflite")["activations"] is None


def test_folding_batchnorm_for_export_keeps_the_scores_and_the_module_paths():
    """Exporters run on a folded copy (converters.base.deployable): same logits, conv names kept
    (OpenVINO's own folding renamed them, and NNCF then quantized nothing)."""
    model = create_model(get_spec("gend-lite-fp32"))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    folded = deployable(model, 224)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the reference is untouched
    assert "backbone.blocks.2.expand.conv" in dict(folded.named_modules())
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-4)
