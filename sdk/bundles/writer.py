"""Writes and reads app bundles (see the package docstring).

Each target's model file is copied from the artifact ``load()`` serves, the app manifest
embedded in it where its converter can (``embed_metadata``), and the bundle's ``manifest.json``
checksums every file, as an artifact's does.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..artifact import BUNDLE_KIND, Artifact, atomic_path, write_manifest
from ..building.build import ensure_artifact
from ..converters import converter_for
from ..converters.base import INPUT_NAME, OUTPUT_NAMES
from ..errors import ArtifactError, UsageError
from ..faces.align import template_points
from ..inference.cached import served
from ..targets import get_target
from ..zoo import ModelSpec, get_spec, list_models, recorded_numerics, resolve
from .codegen import generate
from .platforms import get_platform


@dataclass(frozen=True)
class Bundle:
    """A verified bundle folder: its manifest, and where each target's model file lies."""

    path: Path
    manifest: dict

    @property
    def platform(self) -> str:
        return self.manifest["platform"]

    def model_file(self, target: str) -> Path:
        return self.path / self.manifest["artifacts"][target]["file"]

    def artifact(self, target: str) -> Artifact:
        """``target``'s model file as an artifact a runtime opens (checksums were verified on load),
        so the Python SDK scores exactly the file an app ships: ``deepfake_sdk.load(BUNDLE_DIR)``."""
        if target not in self.manifest["artifacts"]:
            raise UsageError(f"{self.path} ({self.platform} bundle) holds {', '.join(self.manifest['artifacts'])}, "
                             f"not {target!r}")
        entry = self.manifest["artifacts"][target]
        view = {"target": target, "precision": entry["precision"], "model_file": entry["file"],
                "model": {"name": self.manifest["model"]["registered"].rsplit("-", 1)[0]},
                "preprocessing": self.manifest["preprocessing"], "files": {entry["file"]: self.manifest["files"].get(entry["file"])}}
        return Artifact(self.path, view)

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        """Read a bundle, verifying every file's SHA-256 (:class:`ArtifactError` names what is wrong)."""
        artifact = Artifact.load(path)
        if artifact.manifest.get("kind") != BUNDLE_KIND:
            raise ArtifactError(f"{path} is not an app bundle (its manifest is of kind {artifact.manifest.get('kind')!r})")
        return cls(artifact.path, artifact.manifest)


def int8_spec(name: str) -> ModelSpec:
    """The INT8 model behind a zoo name (``gend-fp32``, ``gend-int8``: both mean ``gend-int8``)."""
    spec = get_spec(name)
    twin = f"{spec.base_name}-int8"
    if twin not in list_models():
        raise UsageError(f"{name} has no INT8 build to bundle; models with one: "
                         f"{', '.join(list_models('*-int8'))}")
    return get_spec(twin)


def model_metadata(name: str, spec: ModelSpec) -> dict:
    """What an app needs to feed the model and read its answer: the part of the manifest that is
    embedded in the model files, from which the Kotlin and Swift code is generated and which the
    web module reads at run time."""
    pp = spec.preprocessing
    size = pp.size
    return {
        "sdk": "deepfake-sdk",
        "sdk_version": __version__,
        "model": {"name": name, "registered": resolve(spec.name), "version": spec.version,
                  "family": spec.family, "backbone": spec.backbone},
        "description": spec.description,
        "input": {"name": INPUT_NAME, "shape": [1, 3, size, size], "dtype": "float32", "layout": "NCHW",
                  "channels": "RGB", "value": "(pixel / 255 - mean[c]) / std[c]"},
        "outputs": {"names": list(OUTPUT_NAMES), "logits": ["real", "fake"],
                    "score": "P(fake) = softmax(logits)[1]; fake when P(fake) >= threshold"},
        "preprocessing": {
            **pp.to_dict(),
            # where the 5 landmarks (left eye, right eye, nose, mouth left, mouth right) land in the crop
            "template_points": [[round(float(v), 6) for v in point] for point in template_points(size, pp.margin)],
            "alignment": "least-squares similarity (rotation, uniform scale, shift), bilinear resampling",
            "resize": "bicubic, only when a crop is not already size x size",
            "jpeg": "re-encode the aligned crop as JPEG at jpeg_quality (4:2:0) and decode it, before normalising",
            "face_detector": "MTCNN (facenet-pytorch weights), confidence >= 0.9, largest face",
        },
        "threshold": float(spec.threshold),
    }


def export_bundle(name: str, platform: str, out: str | Path, calibration=None, progress: bool = True,
                  strict: bool = False) -> Bundle:
    """Write ``platform``'s bundle of the INT8 model ``name`` into ``out`` (atomically).

    Each target's artifact is the cached build ``load()`` would serve (built, gate-checked and
    cached on first use); one that missed its build gate raises a ``ParityWarning``, or
    ``ParityGateError`` when ``strict``. The recorded release-gate verdict of each target is
    copied into the manifest, so an app team sees a drifting target before shipping it."""
    plat = get_platform(platform)
    spec = int8_spec(name)
    asked = name if name.endswith("-int8") else f"{name.rsplit('-', 1)[0]}-int8"
    artifacts = {t: served(ensure_artifact(spec, t, calibration=calibration, progress=progress), strict)
                 for t in plat.targets}
    metadata = model_metadata(asked if asked in list_models() else spec.name, spec)
    with atomic_path(Path(out), is_dir=True) as tmp:
        entries = {t: _copy_model(a, tmp, metadata, plat.prepare) for t, a in artifacts.items()}
        for language in plat.code:
            for file_name, text in generate(language, metadata).items():
                (tmp / file_name).write_text(text)
        for file in plat.static:
            shutil.copy(file, tmp / file.name)
        write_manifest(tmp, {"kind": BUNDLE_KIND, "platform": platform, **metadata, "artifacts": entries})
    return Bundle.load(out)


def _copy_model(artifact: Artifact, folder: Path, metadata: dict, prepare: str | None) -> dict:
    """Copy ``artifact``'s model file into the bundle as ``model<suffix>``, adapted for the
    platform's engine (``prepare``) and with ``metadata`` embedded where the converter can;
    returns the manifest's entry for it."""
    target = get_target(artifact.target)
    dest = folder / f"model{target.model_suffix}"
    if artifact.model_file.is_dir():
        shutil.copytree(artifact.model_file, dest)
    else:
        shutil.copy(artifact.model_file, dest)
    converter = converter_for(target.name)
    adapt = getattr(converter, prepare) if prepare else None  # a declared extra of base.Converter
    prepared = adapt(dest) if adapt is not None else None
    embedded = converter.embed_metadata is not None
    if embedded:
        converter.embed_metadata(dest, metadata)
    record = recorded_numerics(get_spec(metadata["model"]["registered"])).get(artifact.target, {})
    return {
        "file": dest.name,
        "precision": artifact.precision,
        "runtime": target.runtime,
        "runtime_versions": target.runtime_versions,
        "predicts_on_linux": target.predicts_on_linux,
        "metadata_embedded": embedded,
        "prepared": {prepare: prepared} if prepared is not None else None,
        "artifact_sha256": artifact.manifest["files"].get(artifact.manifest["model_file"]),
        "recipe_key": artifact.manifest["recipe"]["key"],
        "build_gate": _gate_summary(artifact),
        "release_gate": record.get("status", "not recorded"),
    }


def _gate_summary(artifact: Artifact) -> dict | None:
    report = artifact.manifest.get("mixed_precision") or {}
    if "passed" not in report:
        return None
    last = report["steps"][-1]
    return {"passed": report["passed"], "pearson": last.get("pearson"), "flip_rate": last.get("flip_rate"),
            "faces": report.get("verified_on"), "float_layers": len(report.get("float_layers", []))}


def read_embedded(bundle: Bundle, target: str) -> dict | None:
    """The manifest embedded in ``target``'s model file, read back with its converter's reader."""
    converter = converter_for(target)
    return converter.read_metadata(bundle.model_file(target)) if converter.read_metadata is not None else None


def embedded_part(manifest: dict) -> dict:
    """The part of a bundle manifest that is embedded in its model files (all but the bundle's own
    bookkeeping: checksums, artifact entries, kind)."""
    skip = {"files", "artifacts", "kind", "platform", "format_version"}
    return json.loads(json.dumps({k: v for k, v in manifest.items() if k not in skip}))
