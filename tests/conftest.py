"""Shared fixtures. Tests use a private cache so they never read or pollute the user's."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def _shared_data() -> Path | None:
    for candidate in (os.environ.get("DEEPFAKE_SDK_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "manifest.csv").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """One cache per test session (artifacts built once, shared by the tests that need them).

    Converted backbone weights are reused from the user's cache when present (read-only), so
    the 97 MB ONNX is not re-parsed every run.
    """
    cache = tmp_path_factory.mktemp("cache")
    user = Path(os.environ.get("DEEPFAKE_SDK_CACHE") or Path.home() / ".cache" / "deepfake_sdk")
    if (user / "backbones").is_dir():
        (cache / "backbones").symlink_to(user / "backbones")
    if (user / "facecrops").is_dir():
        (cache / "facecrops").symlink_to(user / "facecrops")
    old = os.environ.get("DEEPFAKE_SDK_CACHE")
    os.environ["DEEPFAKE_SDK_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("DEEPFAKE_SDK_CACHE", None)
    else:
        os.environ["DEEPFAKE_SDK_CACHE"] = old


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_SDK_DATA", raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data()
    if path is None:
        pytest.skip("../shared/data is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def maybe_shared_data() -> Path | None:
    """The shared data folder when present, else None (tests then use packaged photos only)."""
    return _shared_data()


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def astronaut_crop():
    """The packaged aligned astronaut face (224x224, uint8)."""
    from PIL import Image

    from deepfake_sdk.paths import package_weights_dir

    return np.asarray(Image.open(package_weights_dir() / "calibration_face.jpg").convert("RGB"))


def augmented_crops(face: np.ndarray, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` brightness/noise variants of a face crop resized to ``size``: a small real-face set."""
    from PIL import Image

    base = np.asarray(Image.fromarray(face).resize((size, size))).astype(np.float32)
    rng = np.random.default_rng(seed)
    return np.stack([np.clip(base * rng.uniform(0.7, 1.3) + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
                     for _ in range(n)])


def tiny_vit_config(**overrides):
    from deepfake_sdk.models.backbones.vit import ViTConfig

    base = dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, patch_size=14,
                pretrain_image_size=98)
    base.update(overrides)
    return ViTConfig(**base)


@pytest.fixture
def tiny_gend():
    """A random-init GenD small enough to export in seconds."""
    import torch

    from deepfake_sdk.models.gend.model import GenD
    from deepfake_sdk.models.backbones.vit import VisionTransformer

    torch.manual_seed(0)
    model = GenD(VisionTransformer(tiny_vit_config()))
    with torch.no_grad():  # non-trivial LayerNorms and layer-scales so parity is meaningful
        for name, p in model.named_parameters():
            if name.endswith("lambda1"):
                p.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def parity_data(maybe_shared_data, tmp_path_factory):
    """../shared/data when present (the acceptance set), else 24 packaged faces, half fakes."""
    if maybe_shared_data is not None:
        return maybe_shared_data
    from deepfake_sdk.quantization.calibration import write_packaged_set
    from deepfake_sdk.zoo import get_spec

    return write_packaged_set(tmp_path_factory.mktemp("pdata") / "data", 24, get_spec("gend-fp32").preprocessing)


@pytest.fixture(scope="session")
def holdout_data(maybe_shared_data, parity_data) -> Path:
    """Release-gate faces from sources the shipped calibration never saw: 16 per source of
    ../shared/data/manifest_extra.csv when present, else the packaged set."""
    if maybe_shared_data is not None and (maybe_shared_data / "manifest_extra.csv").is_file():
        from deepfake_sdk.training.data import holdout_folder

        return holdout_folder(maybe_shared_data, per_source=16)
    return parity_data


@pytest.fixture(scope="session")
def release_reference(maybe_shared_data, parity_data):
    """gend-int8's float reference on the release set (``training.data.release_folder``: ~560 faces,
    32 per source of manifest_extra.csv + 4 per source of manifest_generated.csv), cached like
    ``deepfake-sdk numerics``'s; the packaged set when ../shared/data is absent."""
    from deepfake_sdk.training.data import HOLDOUT_MANIFEST, release_folder
    from deepfake_sdk.verification.numerics import reference_for
    from deepfake_sdk.zoo import get_spec

    if maybe_shared_data is not None and (maybe_shared_data / HOLDOUT_MANIFEST).is_file():
        return reference_for(get_spec("gend-int8").base_name, release_folder(maybe_shared_data))
    return reference_for(get_spec("gend-int8").base_name, parity_data)


@pytest.fixture(scope="session")
def reference(holdout_data, tmp_path_factory):
    from deepfake_sdk.cli import main
    from deepfake_sdk.verification.parity import Reference

    out = tmp_path_factory.mktemp("ref") / "gend"
    assert main(["reference", "build", "gend-int8", "--data", str(holdout_data), "--out", str(out)]) == 0
    return Reference.load(out)


@pytest.fixture(scope="session")
def unseen_real_crops(maybe_shared_data, tmp_path_factory, astronaut_crop) -> np.ndarray:
    """Aligned crops of up to 16 real faces no shipped model trained or calibrated on: the real
    pool of ../shared/data (sources held out of every family's training, training.folds), spread
    over its sources; without the data folder, variants of the packaged face."""
    if maybe_shared_data is None:
        return augmented_crops(astronaut_crop, 224, 8)
    import csv

    from deepfake_sdk.training.data import build_crops, read_manifest
    from deepfake_sdk.training.folds import real_pool
    from deepfake_sdk.training.items import MANIFESTS

    rows = []
    for name in MANIFESTS:
        if (maybe_shared_data / name).is_file():
            with open(maybe_shared_data / name, newline="") as fh:
                rows += list(csv.DictReader(fh))
    samples = [s for name in MANIFESTS if (maybe_shared_data / name).is_file()
               for s in read_manifest(maybe_shared_data / name)]
    pool = set(real_pool(samples))
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        if row["source"] in pool and row["label"] == "real":
            by_source.setdefault(row["source"], []).append({**row, "path": str(maybe_shared_data / row["path"])})
    picked = [group[0] for group in by_source.values()] + [group[-1] for group in by_source.values() if len(group) > 1]
    folder = tmp_path_factory.mktemp("unseen_real")
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked[:16])
    return build_crops(folder, 224, 1.3).images
