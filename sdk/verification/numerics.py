"""A model's recorded numerics table: the float reference against every target x precision.

Like qai-hub-models' per-model numerics files: one command refreshes it
(``deepfake-sdk numerics gend-clip-b16-fp32 --data ../shared/data``) and the result is committed
beside the model, in its family's folder (``sdk/models/gend/numerics/gend-clip-b16.md``), so a
reader sees what each artifact does on real faces, and a diff shows when a toolchain upgrade
moved a number.
"""
from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import numpy as np

from .. import __version__, jsonio
from ..artifact import sha256_file
from ..building.build import ensure_artifact
from ..paths import cache_dir
from ..runtimes.base import requested_threads, runtime_class
from ..targets import get_target
from ..training import validation
from ..training.data import HOLDOUT_MANIFEST, release_folder
from ..zoo import ModelSpec, composite_of, get_spec, parts_of, with_precision
from .gates import Gate, compare
from .parity import Reference, VerifyResult, build_reference, verify
from .reports import fmt as _f

PREDICTS_ELSEWHERE = "exported and validated; prediction needs macOS/iOS"


def reference_for(model: str, data: Path) -> Reference:
    """The cached float reference of ``model`` (a base name, ``gend-clip-b16``) on ``data``
    (built once per manifest and weights)."""
    spec = get_spec(f"{model}-fp32")
    path = cache_dir() / "references" / f"{spec.base_name}-{spec.version}-{reference_key(spec, data)}"
    if (path / "manifest.json").is_file():
        return Reference.load(path)
    return build_reference(spec.name, data, path)


def reference_key(spec: ModelSpec, data: Path) -> str:
    """What a cached reference depends on: the manifest and the trained tensors (a composite entry
    has none of its own: its parts')."""
    tensors = [w for w in [spec.weights_path, *(p.weights_path for p in parts_of(spec))] if w]
    return "-".join([sha256_file(Path(data) / "manifest.csv")[:12], *(sha256_file(w)[:12] for w in tensors)])


def refresh(model: str, data: Path, targets: list[str], precisions: list[str], out: Path,
            policy: Gate = Gate.release(), validate: bool = True) -> Path:
    """Export (cached) and verify every pair; write ``out/MODEL.json`` and ``out/MODEL.md``.

    Each row's per-face scores are also kept in the cache (:func:`scores_path`), so two machines'
    runs of one build can be compared face by face (``benchmarks/compare_scores.py``). With
    ``validate`` each artifact is also scored on the validation set (a second pass as long as the
    first): a measure, never a gate.

    Rows of other targets/precisions already in ``out/MODEL.json`` (same reference) are kept,
    each with the date it was measured, so one target's recipe change refreshes just its rows."""
    # Release faces from sources the calibration never saw (manifest_extra + generated), when there are.
    faces = release_folder(data) if (Path(data) / HOLDOUT_MANIFEST).is_file() else Path(data)
    ref = reference_for(model, faces)
    spec = get_spec(f"{model}-fp32")
    yardstick = _validation_reference(model, Path(data), spec) if validate else None
    rows, used = [], {}
    for target in targets:
        for precision in precisions:
            if precision not in get_target(target).precisions:
                continue
            row = _row(with_precision(spec, precision), target, ref, faces, policy, used, yardstick)
            rows.append({**row, "measured": datetime.date.today().isoformat()})
    rows = _merged(out / f"{model}.json", ref, rows)
    probs = [float(r["prob"]) for r in ref.samples]
    used["release_gate"] = {"folder": str(faces), "sources": sorted({r["source"] for r in ref.samples}),
                            "faces": len(probs), "threshold": ref.meta["threshold"],
                            "within_0.05_of_threshold": sum(abs(p - ref.meta["threshold"]) <= 0.05 for p in probs)}
    record = {"model": model, "reference": ref.meta, "rows": rows, "policy": policy.to_dict(), "faces": used,
              "sdk": __version__, "machine": f"{platform.system()} {platform.machine()}",
              "command": f"deepfake-sdk numerics {model}-fp32 --data {data}",
              "date": datetime.date.today().isoformat()}
    record.update(_kept_notes(out / f"{model}.json"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{model}.json").write_text(jsonio.dumps(record, indent=1) + "\n")
    path = out / f"{model}.md"
    path.write_text(_markdown(record))
    return path


def _validation_reference(model: str, data: Path, spec: ModelSpec) -> tuple[Reference, Path] | None:
    """The FP32 reference on the validation set (``training.validation``), where the data has one:
    each row then also records the artifact's validation AUC beside the reference's. A measure of
    what quantization costs in detection on unseen sources, never a gate (nothing is gated on it)."""
    if composite_of(spec) is not None or not validation.has_validation(data):
        return None
    folder = validation.validation_folder(data)
    return reference_for(model, folder), folder


def _row(spec: ModelSpec, target: str, ref: Reference, faces: Path, policy: Gate, used: dict,
         yardstick: tuple[Reference, Path] | None = None) -> dict:
    if composite_of(spec) is not None:
        return _composite_row(spec, target, ref, faces, policy, used)
    row, result = _measured(spec, target, ref, faces, policy, used)
    if yardstick is not None and result is not None:  # the same artifact, on the validation faces
        val_ref, folder = yardstick
        m = verify(result.artifact, val_ref, data=folder, policy=policy).metrics
        row["validation"] = {"faces": m.n, "auc_reference": m.auc_reference, "auc": m.auc, "auc_drop": m.auc_drop}
    return row


def _measured(spec: ModelSpec, target: str, ref: Reference, faces: Path, policy: Gate,
              used: dict) -> tuple[dict, VerifyResult | None]:
    """The default build of ``spec`` on ``target``, verified against ``ref`` on ``faces`` (no
    result where the target predicts only on another OS)."""
    artifact = ensure_artifact(spec, target, progress=False)
    row = {"target": target, "precision": spec.precision, "size_mb": round(artifact.size_bytes() / 1e6, 1),
           "recipe": artifact.manifest["recipe"].get("activations", ""),
           "float_layers": len(artifact.manifest["recipe"].get("float_layers") or ())}
    if artifact.manifest.get("calibration"):
        used.setdefault("calibration", artifact.manifest["calibration"])
        used.setdefault("build_gate", (artifact.manifest.get("mixed_precision") or {}).get("gate_faces"))
    if not runtime_class(target).is_available():
        return {**row, "status": PREDICTS_ELSEWHERE}, None
    result = verify(artifact, ref, data=faces, policy=policy)
    _keep_scores(spec, target, ref, result)
    return {**row, **_verdict(result.metrics, policy), "runtime": result.runtime,
            "runtime_version": result.checked_on.get("runtime_version"),
            "cpu_class": result.checked_on.get("cpu_class"), "threads": requested_threads()}, result


def scores_path(model: str, target: str) -> Path:
    """Where the last ``numerics`` run on this machine left ``model``'s per-face scores on ``target``."""
    return cache_dir() / "numerics-scores" / f"{model}-{target}.json"


def _keep_scores(spec: ModelSpec, target: str, ref: Reference, result: VerifyResult) -> None:
    body = {"model": spec.name, "target": target, "artifact": result.artifact, "reference": str(ref.path),
            "threshold": ref.meta["threshold"], "checked_on": result.checked_on,
            "threads": requested_threads(), "faces": [s["path"] for s in ref.samples],
            "reference_scores": ref.probs.tolist(), "scores": result.scores}
    path = scores_path(spec.name, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonio.dumps(body) + "\n")


def _composite_row(spec: ModelSpec, target: str, ref: Reference, faces: Path, policy: Gate, used: dict) -> dict:
    """A composite entry on ``target``: each part's default build verified against its own reference
    on the same faces, their scores combined as the entry's composite does, and that gated against
    the entry's reference (what ``load`` serves: the parts' artifacts and the combination)."""
    parts = parts_of(spec)
    measured = [(_measured(part, target, part_ref, faces, policy, used), part_ref) for part, part_ref in
                ((p, reference_for(p.base_name, faces)) for p in parts)]
    rows = [row for (row, _), _ in measured]
    row = {"target": target, "precision": spec.precision, "size_mb": round(sum(r["size_mb"] for r in rows), 1),
           "recipe": "+".join(r["recipe"] or "-" for r in rows), "float_layers": sum(r["float_layers"] for r in rows),
           "parts": {p.name: r["status"] for p, r in zip(parts, rows)}}
    if not runtime_class(target).is_available():
        return {**row, "status": PREDICTS_ELSEWHERE}
    scores = [dict(zip((s["path"] for s in part_ref.samples), result.scores)) for (_, result), part_ref in measured]
    probs = np.stack([np.array([by_path[s["path"]] for s in ref.samples]) for by_path in scores])
    fused = composite_of(spec).combine_probs(spec, probs)
    metrics = compare(ref.probs, fused, ref.labels, ref.meta["threshold"])
    return {**row, **_verdict(metrics, policy), "runtime": rows[0]["runtime"],
            "runtime_version": rows[0].get("runtime_version"), "cpu_class": rows[0].get("cpu_class"),
            "threads": rows[0].get("threads")}


def _verdict(m, policy: Gate) -> dict:
    """The gate's verdict and what it rests on: every metric, and for the flips the count at the
    threshold, the band average, the bound judged and its margin to the limit (``Gate.flip_evidence``)."""
    failed = [c.metric for c in policy.checks(m) if not c.passed]
    return {"status": "DRIFT: " + ", ".join(failed) if failed else "pass", "pearson": m.pearson, "spearman": m.spearman,
            "flip_rate": m.flip_rate, "auc": m.auc, "auc_drop": m.auc_drop, "eer_increase": m.eer_increase,
            "p99_abs_diff": m.p99_abs_diff, "max_abs_diff": m.max_abs_diff,
            "feature_cosine_mean": m.feature_cosine_mean, "nonfinite": m.nonfinite,
            "flip_evidence": policy.flip_evidence(m)}


def _same_faces_record(previous: Path, ref: Reference) -> dict:
    """The record in ``previous`` when it was measured against ``ref``'s faces, else ``{}``."""
    if not previous.is_file():
        return {}
    old = json.loads(previous.read_text())
    same_faces = (old.get("reference") or {}).get("data", {}).get("manifest_sha256") == ref.meta["data"]["manifest_sha256"]
    return old if same_faces else {}


def _merged(previous: Path, ref: Reference, rows: list[dict]) -> list[dict]:
    """``rows`` plus the rows of ``previous`` they do not replace, in its order, when ``previous``
    was measured against the same reference faces (else only ``rows``)."""
    old = _same_faces_record(previous, ref)
    if not old:
        return rows
    fresh = {(r["target"], r["precision"]): r for r in rows}
    kept = [fresh.pop((r["target"], r["precision"]), {**r, "measured": r.get("measured", old.get("date"))})
            for r in old.get("rows", [])]
    return kept + list(fresh.values())


def _kept_notes(previous: Path) -> dict:
    """What people wrote beside the rows of ``previous`` (``notes``: paragraphs of the table's page;
    ``*_trials``: recipes tried and not kept), carried into every refreshed record, so a refresh
    never drops why a row looks as it does. Each note and trial says when and on which faces it
    was measured; notes of an earlier release set are kept as history (the page says so)."""
    if not previous.is_file():
        return {}
    old = json.loads(previous.read_text())
    return {k: v for k, v in old.items() if k == "notes" or k.endswith("_trials")}


def _flips_cells(row: dict) -> str:
    """Three cells: flips at the threshold (count and rate), the band average, the judged bound and
    its margin to the limit (rows recorded before 2026-12-07 have only the rate)."""
    ev = row.get("flip_evidence")
    if ev is None:
        return f"{_f(row.get('flip_rate'), '.2%')} | – | –"
    return (f"{ev['flips']} ({_f(row.get('flip_rate'), '.2%')}) | {_f(ev.get('flips_near_threshold'), '.2f')} | "
            f"{_f(ev.get('judged_rate'), '.2%')} ({_f(ev.get('margin'), '+.2%')})")


def _validation_cell(v: dict | None) -> str:
    return "–" if not v else f"{_f(v.get('auc'), '.4f')} ({_f(v.get('auc_drop'), '+.4f')})"


def _faces_lines(used: dict) -> list[str]:
    calib, gate, release = used.get("calibration") or {}, used.get("build_gate") or {}, used.get("release_gate") or {}
    maxima = calib.get("smoothquant_maxima") or {}
    lines = []
    if maxima:
        lines.append(f"- calibration (SmoothQuant maxima, `{maxima.get('file')}`): {maxima.get('crops')} crops of "
                     f"{', '.join(maxima.get('sources', []))}; activations are quantized at run time where the recipe says dynamic")
    if gate:
        lines.append(f"- build gate (on the building machine): {gate.get('size')} crops of {', '.join(gate.get('sources', []))}")
    if release:
        lines.append(f"- this table (release gate): {release.get('faces')} faces of {len(release.get('sources', []))} held-out "
                     f"sources ({', '.join(release.get('sources', []))}); {release.get('within_0.05_of_threshold')} "
                     f"reference scores lie within ±0.05 of the {release.get('threshold', 0.5):.3f} threshold, "
                     "the faces a small INT8 error can flip")
    return lines


def _markdown(record: dict) -> str:
    ref, m = record["reference"], record["reference"]["metrics"] or {}
    lines = [f"# Numerics: {record.get('model') or record.get('family')}", "",
             f"Float reference `{ref['model']}` ({ref['device']}, torch {ref['torch']}) on {ref['data']['samples']} faces "
             f"of `{Path(ref['data']['folder']).name}` (manifest {ref['data']['manifest_sha256'][:12]}): "
             f"AUC {_f(m.get('auc'), '.4f')}, AP {_f(m.get('ap'), '.4f')}, EER {_f(m.get('eer'), '.4f')}.",
             f"Refreshed {record['date']} on {record['machine']} with `{record['command']}` (SDK {record['sdk']}).",
             "Gate: " + ", ".join(f"{k}={v}" for k, v in record["policy"].items() if v is not None) + ".", "",
             "| target | precision | activations | float layers | MB | verdict | Pearson | flips | near thr. | "
             "95% bound (margin) | AUC | ΔAUC (drop) | ΔEER | p99 abs Δp | feat cos | validation AUC (drop) | CPU class | measured |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['target']} | {r['precision']} | {r.get('recipe') or '–'} | {r.get('float_layers', '–')} | "
                     f"{r['size_mb']} | {r['status']} | "
                     f"{_f(r.get('pearson'), '.4f')} | {_flips_cells(r)} | {_f(r.get('auc'), '.4f')} | "
                     f"{_f(r.get('auc_drop'), '+.4f')} | {_f(r.get('eer_increase'), '+.4f')} | "
                     f"{_f(r.get('p99_abs_diff'), '.3f')} | {_f(r.get('feature_cosine_mean'), '.4f')} | "
                     f"{_validation_cell(r.get('validation'))} | {r.get('cpu_class') or '–'} | "
                     f"{r.get('measured') or record['date']} |")
    lines += ["", "Which faces each step used (disjoint by source):", ""] + _faces_lines(record.get("faces") or {})
    lines += ["", "None of these faces calibrated the artifacts (gate and calibration sources are disjoint). The "
              "table is about how faithfully each artifact reproduces the float model, not how good the model "
              "is: the model's held-out detection numbers are in its card (`deepfake-sdk card MODEL`)."]
    if record.get("notes"):
        lines += ["", "## Notes", "", "Dated; a note before 2026-12-07 counts flips on the earlier 284-face release set "
                  "(16 per source of manifest_extra.csv), where one face was 0.35%."]
    for paragraph in record.get("notes") or ():
        lines += ["", paragraph]
    return "\n".join(lines) + "\n"
