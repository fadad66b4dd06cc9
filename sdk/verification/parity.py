"""Accuracy parity: a stored full-precision reference, and ``verify`` of any artifact against it.

Peers check tensors on random input (atol on dummy tensors, PSNR) and drift on real faces slips
through; we check the task. ``build_reference`` runs the float PyTorch model once (on CUDA when
there is one) over labelled face images and stores, per sample, the image hash, face box and
landmarks, fake probability, logits and L2 feature, plus the set's detection metrics. A CPU-only
CI runner then ``verify``-s each artifact with its own runtime on the same crops, against a
:class:`~deepfake_sdk.verification.gates.Gate`: exit 0 pass, 1 drift, 2 error (see ``deepfake-sdk verify``).
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import jsonio
from ..artifact import Artifact, atomic_path, write_manifest
from ..device import device_info
from ..errors import ArtifactError, DeepfakeSDKError, InvalidReferenceError, UsageError
from ..metrics import detection_metrics, softmax_fake
from ..models.factory import create_model
from ..preprocess import to_batch
from ..runtimes.base import require_runtime, runtime_for
from ..training.data import build_crops
from ..zoo import get_spec
from .gates import Check, Gate, ParityMetrics, compare

REFERENCE_KIND = "deepfake-sdk parity reference"
SAMPLES_FILE, FEATURES_FILE, META_FILE = "samples.csv", "features.npy", "reference.json"


# --------------------------------------------------------------------------- reference store


@dataclass(frozen=True)
class Reference:
    """A loaded (checksum-verified) reference: metadata, per-sample rows, optional features."""

    path: Path
    meta: dict
    samples: list[dict]
    features: np.ndarray | None

    @property
    def probs(self) -> np.ndarray:
        return np.array([float(s["prob"]) for s in self.samples])

    @property
    def labels(self) -> np.ndarray | None:
        labels = [s["label"] for s in self.samples]
        return None if any(v == "" for v in labels) else np.array([int(v) for v in labels])

    @classmethod
    def load(cls, path: str | Path) -> "Reference":
        path = Path(path)
        try:
            Artifact.load(path)  # same checksummed-manifest format as artifacts
        except ArtifactError as exc:
            raise InvalidReferenceError(f"reference {path} cannot be trusted: {exc}") from exc
        meta = json.loads((path / META_FILE).read_text())
        if meta.get("kind") != REFERENCE_KIND:
            raise InvalidReferenceError(f"{path} is not a parity reference (it has no {META_FILE} of kind {REFERENCE_KIND!r})")
        with open(path / SAMPLES_FILE, newline="") as fh:
            samples = list(csv.DictReader(fh))
        features = np.load(path / FEATURES_FILE).astype(np.float32) if (path / FEATURES_FILE).is_file() else None
        return cls(path, meta, samples, features)


def reference_device(requested: str | None = None, cuda_available: bool | None = None) -> torch.device:
    """Where the full-precision reference runs: ``requested`` when given and present, else CUDA
    when there is a GPU, else the CPU. A GPU asked for and absent is a :class:`UsageError`, not
    a silent CPU run (the reference records its device, and CI compares against it)."""
    has_cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if requested is None:
        return torch.device("cuda" if has_cuda else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise UsageError(f"--device {requested!r} is not a torch device (cpu, cuda, cuda:1)") from err
    if device.type == "cuda" and not has_cuda:
        raise UsageError(f"--device {requested} asked for a GPU, but torch sees none here (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {requested}: a reference runs on cpu or cuda")
    return device


@contextlib.contextmanager
def strict_fp32():
    """TF32 off for the reference's matmuls and convolutions, restored afterwards: on Ampere and
    later GPUs TF32 keeps 10 mantissa bits, which is itself a drift the reference must not carry."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def describe_device(device: torch.device) -> dict:
    """What the reference records about where it ran."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(index), "tf32": False,
                "cuda": torch.version.cuda}
    return {"device": "cpu", "device_name": device_info().describe().get("cpu_class", "cpu"), "tf32": False}


def build_reference(model: str, data: str | Path, out: str | Path, features: bool = True,
                    device: str | None = None, limit: int | None = None) -> Reference:
    """Run the full-precision ``model`` (e.g. ``gend-fp32``) over ``data`` and store the reference."""
    spec = get_spec(model)
    if spec.precision != "fp32":
        raise InvalidReferenceError(f"a reference is the full-precision model; use {spec.base_name}-fp32, not {model}")
    data = _data_dir(data)
    crops = build_crops(data, spec.preprocessing.size, spec.preprocessing.margin)
    n = min(limit or len(crops.samples), len(crops.samples))
    device = reference_device(device)
    net = create_model(spec).eval().to(device)
    logits, feats = [], []
    with torch.inference_mode(), strict_fp32():
        for i in range(0, n, 32):
            x = torch.from_numpy(to_batch(crops.images[i : min(i + 32, n)], spec.preprocessing)).to(device)
            out_logits, out_feats = net.logits_and_features(x)  # the model contract: one pass
            logits.append(out_logits.float().cpu().numpy())
            feats.append(out_feats.float().cpu().numpy())
    logits = np.concatenate(logits)
    probs = softmax_fake(logits)
    rows = []
    for i in range(n):
        s, face = crops.samples[i], (crops.faces[i] if crops.faces else {})
        rows.append({"id": i, "path": s.path, "source": s.source, "label": s.label,
                     "image_sha256": face.get("sha256", ""), "crop_sha256": _crop_hash(crops.images[i]),
                     "box": json.dumps(face.get("box")), "landmarks": json.dumps(face.get("landmarks")),
                     "prob": repr(float(probs[i])), "logit_real": repr(float(logits[i, 0])),
                     "logit_fake": repr(float(logits[i, 1]))})
    labels = np.array([r["label"] for r in rows])
    meta = {
        "kind": REFERENCE_KIND, "model": spec.name, "family": spec.base_name, "version": spec.version,
        "preprocessing": spec.preprocessing.to_dict(), "threshold": spec.threshold,
        **describe_device(device), "torch": torch.__version__,
        "data": {"folder": str(data), "manifest_sha256": crops.manifest_sha256, "samples": n,
                 "skipped_no_face": crops.skipped},
        "metrics": detection_metrics(labels, probs),
        "per_source": _per_source(rows, probs),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(Path(out), is_dir=True) as tmp:
        with open(tmp / SAMPLES_FILE, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        if features and feats:
            np.save(tmp / FEATURES_FILE, np.concatenate(feats).astype(np.float16))
        (tmp / META_FILE).write_text(jsonio.dumps(meta, indent=1) + "\n")
        write_manifest(tmp, {"kind": REFERENCE_KIND})
    return Reference.load(out)


def _per_source(rows: list[dict], probs: np.ndarray) -> dict:
    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by.setdefault(r["source"], []).append(i)
    out = {}
    for source, idx in sorted(by.items()):
        labels = np.array([rows[i]["label"] for i in idx])
        out[source] = {"n": len(idx), "n_fake": int(labels.sum()), "mean_prob": float(probs[idx].mean()),
                       "accuracy": float(np.mean((probs[idx] >= 0.5) == labels.astype(bool))),
                       **({"auc": m["auc"]} if (m := detection_metrics(labels, probs[idx])) else {})}
    return out


def _crop_hash(crop: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest()[:16]


def _data_dir(data: str | Path) -> Path:
    path = Path(data)
    if path.is_file() and path.name.endswith(".csv"):
        path = path.parent
    if not (path / "manifest.csv").is_file():
        raise InvalidReferenceError(f"{data} is not a data folder: it has no manifest.csv "
                             "(columns path,label,source; see docs/parity.md)")
    return path


# --------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found for one artifact; ``passed`` is the gate's verdict."""

    artifact: str
    target: str
    precision: str
    runtime: str
    reference: str
    metrics: ParityMetrics
    checks: list[Check]
    worst: list[dict] = field(default_factory=list)
    per_source: dict = field(default_factory=dict)
    inputs_identical: int = 0  # crops whose pixels hash equal to the reference's
    policy: dict = field(default_factory=dict)
    scores: list[float] = field(default_factory=list, repr=False)  # artifact p(fake), reference order
    # The machine this verdict holds for: INT8 numerics differ by CPU class and runtime release.
    checked_on: dict = field(default_factory=dict)
    # The flip verdict's evidence: count, band average, bound judged, limit, margin (Gate.flip_evidence).
    flip_evidence: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def name(self) -> str:
        return f"{self.target}-{self.precision}"

    def to_dict(self) -> dict:
        body = asdict(self)
        body["passed"] = self.passed
        body["failed_metrics"] = [c.metric for c in self.failures]
        for check, out in zip(self.checks, body["checks"]):
            out["margin"] = check.margin
        return body


def verify(artifact: str | Path | Artifact, reference: str | Path | Reference, data: str | Path | None = None,
           policy: Gate = Gate.release(), worst: int = 10) -> VerifyResult:
    """Run ``artifact`` with its own runtime on the reference's faces and gate the differences."""
    artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    _check_compatible(artifact, ref)
    require_runtime(artifact.target)
    folder = _data_dir(data or ref.meta["data"]["folder"])
    spec = get_spec(ref.meta["model"])
    crops = build_crops(folder, spec.preprocessing.size, spec.preprocessing.margin)
    if crops.manifest_sha256 != ref.meta["data"]["manifest_sha256"]:
        raise InvalidReferenceError(f"{folder}/manifest.csv differs from the one the reference was built on "
                             f"(sha256 {crops.manifest_sha256[:12]} vs {ref.meta['data']['manifest_sha256'][:12]}): "
                             "rebuild the reference or point --data at the original set")
    index = {s.path: i for i, s in enumerate(crops.samples)}
    missing = [s["path"] for s in ref.samples if s["path"] not in index]
    if missing:
        raise InvalidReferenceError(f"{len(missing)} reference samples have no face crop in {folder} (first: {missing[0]})")
    picked = np.array([index[s["path"]] for s in ref.samples])
    images = crops.images[picked]
    identical = sum(_crop_hash(images[i]) == s["crop_sha256"] for i, s in enumerate(ref.samples))
    runtime = runtime_for(artifact)
    try:
        outs = [runtime.outputs(to_batch(images[i : i + 16], spec.preprocessing)) for i in range(0, len(images), 16)]
    except DeepfakeSDKError:
        raise
    except Exception as exc:  # a runtime failing mid-run is an error (exit 2), not drift
        raise ArtifactError(f"{artifact.path}: the {runtime.name} runtime failed while scoring: {exc}") from exc
    logits = np.concatenate([o[0] for o in outs])
    feats = np.concatenate([o[1] for o in outs]) if all(o[1] is not None for o in outs) else None
    probs = softmax_fake(logits)
    metrics = compare(ref.probs, probs, ref.labels, ref.meta["threshold"], ref.features, feats)
    return VerifyResult(
        artifact=str(artifact.path), target=artifact.target, precision=artifact.precision, runtime=runtime.name,
        reference=str(ref.path), metrics=metrics, checks=policy.checks(metrics),
        worst=_worst(ref, probs, worst), per_source=_source_drift(ref, probs),
        inputs_identical=int(identical), policy=asdict(policy), scores=[float(p) for p in probs],
        flip_evidence=policy.flip_evidence(metrics),
        checked_on={**device_info().describe(), "runtime_version": type(runtime).version(),
                    "reference_device": ref.meta.get("device_name", ref.meta.get("device"))})


def _check_compatible(artifact: Artifact, ref: Reference) -> None:
    model = artifact.manifest.get("model", {})
    if model.get("name") != ref.meta["family"]:
        raise InvalidReferenceError(f"{artifact.path} is a {model.get('name')!r} model; the reference is {ref.meta['family']!r}")
    if model.get("version") != ref.meta["version"]:
        raise InvalidReferenceError(f"{artifact.path} is {ref.meta['family']} version {model.get('version')}; the reference "
                             f"was built from version {ref.meta['version']}: rebuild one of them")
    if artifact.preprocessing != ref.meta["preprocessing"]:
        raise InvalidReferenceError(f"{artifact.path} preprocesses differently from the reference "
                             f"({artifact.preprocessing} vs {ref.meta['preprocessing']})")


def _worst(ref: Reference, probs: np.ndarray, k: int) -> list[dict]:
    diff = np.abs(np.nan_to_num(probs, nan=0.5) - ref.probs)
    order = np.argsort(-diff)[:k]
    threshold = ref.meta["threshold"]
    return [{"path": ref.samples[i]["path"], "source": ref.samples[i]["source"], "reference": float(ref.probs[i]),
             "artifact": float(probs[i]), "abs_diff": float(diff[i]),
             "flipped": bool((ref.probs[i] >= threshold) != (probs[i] >= threshold))} for i in order]


def _source_drift(ref: Reference, probs: np.ndarray) -> dict:
    threshold = ref.meta["threshold"]
    by: dict[str, list[int]] = {}
    for i, s in enumerate(ref.samples):
        by.setdefault(s["source"], []).append(i)
    return {source: {"n": len(idx), "flips": int(np.sum((ref.probs[idx] >= threshold) != (probs[idx] >= threshold))),
                     "max_abs_diff": float(np.max(np.abs(probs[idx] - ref.probs[idx])))}
            for source, idx in sorted(by.items())}
