"""The cheap half of the artifact cache: which built artifact serves a zoo entry on a target, found
without building anything.

An artifact's folder is named by its full recipe key (``export.recipe_key``: calibration crops'
hash, exporter and model code hashes, ...), which costs seconds to compute: the calibration and
gate crops must be made to hash them. ``build.ensure_artifact`` therefore records (in
``<cache>/served/``, one JSON per entry, precision, target and gate) which folder it built or found,
with a *stamp* that is cheap to recompute: the SDK version, the trained tensors' SHA-256 (and of the
files named after them: card, calibration profile), and the size and modification time of every
model, converter and quantization source file (``stat`` only, nothing read). ``load()`` serves a
recorded folder when the stamp still matches (then :class:`Artifact` verifies the model file's
checksum as on every load); any change to the code or the weights, or a custom calibration set,
falls back to the full key, which finds or builds the right artifact and records it again. Also
here: the build gate's verdict on a served artifact (:func:`served`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

from .. import __version__
from ..artifact import Artifact, atomic_path, sha256_file
from ..errors import ArtifactError, ParityGateError, ParityWarning
from ..paths import cache_dir
from ..zoo import ModelSpec

_CODE = ("deepfake_sdk.models", "deepfake_sdk.converters", "deepfake_sdk.quantization")
INDEX = "served"  # cache folder of the records, beside ``artifacts/`` (one JSON per entry x target x gate)


def code_stamp() -> str:
    """Size and mtime of every source file artifacts are built from: changes whenever a file is
    edited or reinstalled, costs a ``stat`` per file (no file is read)."""
    digest = hashlib.sha256()
    for package in _CODE:
        root = Path(importlib.util.find_spec(package).origin).parent
        for file in sorted(root.rglob("*.py")):
            st = file.stat()
            digest.update(f"{file.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def stamp(spec: ModelSpec) -> dict:
    """What decides whether a recorded artifact still serves ``spec``: the SDK version, the source
    files' stat stamp, and by checksum the trained tensors and the files named after them beside
    them (the model card, whose threshold the manifest carries, and the calibration profile)."""
    weights = spec.weights_path
    stem = weights.name.split(".", 1)[0] if weights else None
    beside = sorted(weights.parent.glob(f"{stem}.*")) if weights and weights.parent.is_dir() else []
    return {"sdk": __version__, "code": code_stamp(), "tensors": {f.name: sha256_file(f) for f in beside}}


def _entry(spec: ModelSpec, target: str, gate) -> Path:
    gate_key = hashlib.sha256(json.dumps(gate.to_dict() if gate else None, sort_keys=True).encode()).hexdigest()[:8]
    return cache_dir() / INDEX / f"{spec.base_name}-{spec.precision}-{target}-{gate_key}.json"


def lookup(spec: ModelSpec, target: str, gate=None) -> Artifact | None:
    """The artifact recorded for ``spec`` on ``target`` (default calibration) if its stamp still
    matches; None when nothing is recorded, it is stale, or the folder is gone or fails its checksum
    (the full build path then decides)."""
    entry = _entry(spec, target, gate)
    try:
        record = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    if record.get("stamp") != stamp(spec):
        return None
    try:
        return Artifact.load(cache_dir() / "artifacts" / record["artifact"], expect_target=target)
    except (ArtifactError, KeyError, TypeError):
        return None


def remember(spec: ModelSpec, target: str, gate, artifact: Artifact) -> None:
    """Record that ``artifact`` serves ``spec`` on ``target`` under today's stamp (atomic write)."""
    entry = _entry(spec, target, gate)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(entry) as tmp:
        tmp.write_text(json.dumps({"artifact": artifact.path.name, "stamp": stamp(spec)}, indent=1) + "\n")


def gate_failure(artifact: Artifact) -> str | None:
    """Why ``artifact`` missed its build gate (the numbers), or None when it passed or had none."""
    report = artifact.manifest.get("mixed_precision") or {}
    if report.get("passed", True):
        return None
    last = report["steps"][-1]
    where = (report.get("checked_on") or {}).get("cpu_class", "?")
    faces = (report.get("gate_faces") or {}).get("source", "?")
    limits = {k: v for k, v in report["gate"].items() if v is not None}
    n = report.get("verified_on") or 0
    resolution = f"; one face is {1 / n:.1%} of them" if n else ""
    return (f"{artifact.path.name} missed its build gate on this CPU ({where}): Pearson {last['pearson']:.4f}, "
            f"flips {last['flip_rate']:.2%}, max |dp| {last['max_abs_diff']:.3f} on {n} "
            f"gate faces ({faces}{resolution}) with {len(report.get('float_layers', []))} layers kept float "
            f"(limits: {limits}). The build gate only screens; the release verdict is `deepfake-sdk verify` "
            "on held-out faces (doctor lists each build's recorded one)")


def served(artifact: Artifact, strict: bool) -> Artifact:
    """``artifact`` if it passed its build gate; else a loud warning, or refusal under ``strict``."""
    failure = gate_failure(artifact)
    if failure and strict:
        raise ParityGateError(f"{failure}. Refusing it (strict=True): use an FP32 model, or export with "
                              "more layers float (deepfake-sdk export --mixed-precision N).")
    if failure:
        warnings.warn(ParityWarning(f"{failure}. Scores may differ from the float reference; "
                                    "pass strict=True to refuse such builds."), stacklevel=3)
    return artifact
