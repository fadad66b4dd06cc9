"""``deepfake-sdk``: predict, scan, export, train, benchmark, reference, verify, numerics, doctor, models.

Exit codes: 0 success (verify: every artifact passed), 1 drift (verify), 2 error.
Each command imports the module that does its work when it runs: those load torch and the
toolchains, and ``deepfake-sdk --help`` or ``doctor`` should not wait for them.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import textwrap
from pathlib import Path

from . import jsonio
from .artifact import Artifact, atomic_path
from .bundles.platforms import PLATFORMS
from .device import device_info, preference, select_target, speed_order
from .errors import DeepfakeSDKError, InvalidImageError, UsageError
from .imageio import IMAGE_SUFFIXES
from .paths import cache_dir
from .quantization.config import config_for
from .runtimes.base import runtime_class
from .targets import TARGETS
from .training.cards import attach_comparison, comparison_column
from .verification.gates import Gate
from .video import VIDEO_SUFFIXES, is_video
from .zoo import DEFAULT_MODEL, ModelSpec, get_family, get_spec, list_families, list_models, load_callable, recorded_drift, student_spec

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
# ``predict`` of at most this many files is a one-shot call: the runtime that answers first wins
# when its steady speed is close (device.select_target); more files run on the fastest steady one.
ONE_SHOT_INPUTS = 8


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args) or EXIT_OK
    except DeepfakeSDKError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepfake-sdk", description="Deepfake detection on any device.")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    pr = sub.add_parser("predict", help="score images (one row per image)")
    pr.add_argument("images", nargs="+", help="image or video files, or folders of them")
    pr.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo name or artifact folder (default {DEFAULT_MODEL})")
    pr.add_argument("--target", help="force a target (onnx, ...); default: chosen for this device")
    pr.add_argument("--all-faces", action="store_true", help="score every face, not only the largest")
    pr.add_argument("--json", action="store_true", help="JSON lines for machines")
    pr.add_argument("--truth", help="CSV (file,label[,what]) of known labels: adds a column and a summary line")
    pr.add_argument("--explain", metavar="DIR",
                    help="draw each face's heatmap over its aligned crop into DIR (PNG); --json rows carry the grid")
    pr.add_argument("--fps", type=float, default=2.0, help="videos: frames sampled per second (default 2)")
    pr.add_argument("--max-frames", type=int, default=64, help="videos: at most this many frames, spread over the clip")
    pr.add_argument("--crops", metavar="DIR",
                    help="write each face's aligned crop into DIR (PNG): the input of the web page and of app code")
    pr.set_defaults(func=cmd_predict)

    cd = sub.add_parser("card", help="a model's card: held-out AUC per fold beside the controls, threshold, data")
    cd.add_argument("model", help="zoo name, e.g. gend-int8")
    cd.add_argument("--json", action="store_true", help="the whole card as JSON")
    cd.add_argument("--attach", action="append", metavar="CARD",
                    help="another model's card (same data): write its fold AUCs beside this card's")
    cd.add_argument("--videos", metavar="DATA",
                    help="score DATA/videos.csv's clips with the FP32 reference and write the video AUC into the card")
    cd.add_argument("--validate", metavar="DATA",
                    help="score DATA/manifest_validation.csv with the FP32 reference and write the validation AUCs "
                         "(overall and per family, 95%% intervals, metadata control) into the card")
    cd.add_argument("--fps", type=float, default=2.0, help="with --videos: frames sampled per second")
    cd.add_argument("--max-frames", type=int, default=16, help="with --videos: at most this many frames a clip")
    cd.set_defaults(func=cmd_card)

    sc = sub.add_parser("scan", help="score every image and video under folders/lists into a Parquet dataset (resumable)")
    sc.add_argument("inputs", nargs="+", help="folders (searched recursively), files, or .txt lists of paths")
    sc.add_argument("--out", required=True, help="results folder (a Parquet dataset: part-*.parquet); a rerun resumes it")
    sc.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo name or artifact folder (default {DEFAULT_MODEL})")
    sc.add_argument("--target", help="force a target; default: chosen for this device")
    sc.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="local: this process (--workers 1) or a process pool; ray: Ray actors (local Ray on loopback, "
                         "or the cluster at --address)")
    sc.add_argument("--workers", type=int, default=1, help="worker processes / Ray actors, each loading the model once")
    sc.add_argument("--address", help="Ray cluster address (ray://host:10001 or host:6379); default: a local Ray")
    sc.add_argument("--chunk-size", type=int, default=8, help="files per task and per part file written")
    sc.add_argument("--fps", type=float, default=2.0, help="videos: frames sampled per second")
    sc.add_argument("--max-frames", type=int, default=64, help="videos: at most this many frames")
    sc.add_argument("--all-faces", action="store_true", help="images: score every face (row score = the most fake)")
    sc.add_argument("--threads", type=int, default=1,
                    help="threads per worker (face detector, runtime); the same in every engine so they agree")
    sc.add_argument("--setup", metavar="MODULE:FUNCTION",
                    help="called in every worker before the model loads (registers your own zoo entries)")
    sc.add_argument("--no-progress", action="store_true", help="no progress bar")
    sc.set_defaults(func=cmd_scan)

    ex = sub.add_parser("export", help="export a model to a target's artifact, or an app bundle (--for)")
    ex.add_argument("model", help="zoo name, e.g. gend-fp32")
    where = ex.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="target name")
    where.add_argument("--for", dest="platform", choices=list(PLATFORMS),
                       help="an app bundle: the platform's INT8 models + manifest + preprocessing code (needs --out)")
    ex.add_argument("--precision", default="int8", choices=["int8", "w8", "fp16", "fp32"])
    ex.add_argument("--calibration", help="data folder with manifest.csv (default $DEEPFAKE_SDK_DATA, then packaged)")
    ex.add_argument("--out", help="artifact folder (default: the cache)")
    ex.add_argument("--verify", help="data folder whose crops the INT8 export is checked on (parity in the manifest)")
    ex.add_argument("--mixed-precision", type=int, default=0, metavar="STEPS",
                    help="when the INT8 export misses the parity gate, keep sensitive layers float (up to STEPS re-exports)")
    ex.set_defaults(func=cmd_export)

    tr = sub.add_parser("train", help="train a model's small trained part (its family's recipe) + model card")
    tr.add_argument("model", help="full-precision zoo name, e.g. gend-clip-b16-fp32 (a family name means its default)")
    tr.add_argument("--data", required=True, help="folder with manifest.csv (+ manifest_extra.csv, manifest_generated.csv)")
    tr.add_argument("--epochs", type=int, default=None, help="default: the family recipe's (GenD 3, LFM 10)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default=None, help="where to write tensors + card (default: the family's weights/)")
    tr.add_argument("--device", default="auto", help="torch device (default: cuda when present, else cpu)")
    tr.add_argument("--budget-blocks", type=int, default=None, metavar="N",
                    help="CPU budget: tune only the last N blocks on cached tokens (default: 2 on CPU, full on CUDA)")
    tr.add_argument("--no-eval", action="store_true", help="skip the held-out folds (the card then has no AUCs)")
    tr.add_argument("--compare", action="append", metavar="CARD",
                    help="another model's card (same data): its fold AUCs go beside this one's")
    tr.set_defaults(func=cmd_train)

    di = sub.add_parser("distill", help="distil a teacher into a phone-size student (every weight trained) + model card")
    di.add_argument("--teacher", default="gend-fp32", help="full-precision zoo name of the teacher (default gend-fp32)")
    di.add_argument("--student", default="efficientnet-lite0",
                    help="student zoo name, or the backbone a student is registered on (efficientnet-lite0, dinov2-vits14-offline)")
    di.add_argument("--data", required=True, help="folder with manifest.csv (+ manifest_extra.csv, manifest_generated.csv)")
    di.add_argument("--epochs", type=int, default=2)
    di.add_argument("--seed", type=int, default=0)
    di.add_argument("--out", default=None, help="where to write tensors + card (default: the family's weights/)")
    di.add_argument("--device", default="auto", help="torch device (default: cuda when present, else cpu)")
    di.add_argument("--no-eval", action="store_true", help="skip the held-out family folds")
    di.add_argument("--restore", action="store_true",
                    help="no training: re-store the distilled tensors in today's storage format and re-measure the "
                         "threshold and teacher agreement on the real pool")
    di.set_defaults(func=cmd_distill)

    bm = sub.add_parser("benchmark", help="export every target; print size, parity and latency per format")
    bm.add_argument("--data", required=True, help="folder with manifest.csv (scored crops and calibration)")
    bm.add_argument("--targets", default="all", help="comma-separated targets (default all)")
    bm.add_argument("--models", default="gend-fp32", help="comma-separated zoo names (default gend-fp32)")
    bm.add_argument("--precisions", default="fp32,int8")
    bm.add_argument("--limit", type=int, default=0, help="score only the first N crops")
    bm.add_argument("--json", help="also write the rows to this JSON file")
    bm.set_defaults(func=cmd_benchmark)

    rf = sub.add_parser("reference", help="store the full-precision reference that artifacts are verified against")
    rf_sub = rf.add_subparsers(title="reference commands", metavar="ACTION")
    rb = rf_sub.add_parser("build", help="run the float model over a data set and store per-face results + metrics")
    rb.add_argument("model", help="full-precision zoo name, e.g. gend-fp32 (gend-int8 means its gend-fp32)")
    rb.add_argument("--data", required=True, help="data folder with manifest.csv (path,label,source), or the CSV")
    rb.add_argument("--out", required=True, help="reference folder to write")
    rb.add_argument("--no-features", action="store_true", help="do not store L2 features (smaller reference)")
    rb.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    rb.add_argument("--limit", type=int, help="only the first N faces")
    rb.set_defaults(func=cmd_reference_build)

    vf = sub.add_parser("verify", help="check artifacts against a reference; exit 0 pass, 1 drift, 2 error")
    vf.add_argument("artifacts", nargs="+", help="artifact folders")
    vf.add_argument("--reference", required=True, help="folder written by 'reference build'")
    vf.add_argument("--data", help="data folder, if it moved since the reference was built")
    vf.add_argument("--policy", help="JSON/TOML file with gate limits (flags below override it)")
    for flag, help_ in [("--max-auc-drop", "default 0.005"), ("--max-flip-rate", "limit on the flip rate's 95%% upper bound, flips averaged within "
                        "0.03 of the threshold; default 0.02"),
                        ("--min-pearson", "default 0.995"), ("--max-eer-increase", "off by default"),
                        ("--max-p99-abs-diff", "off by default"), ("--min-feature-cosine", "off by default")]:
        vf.add_argument(flag, type=float, help=help_)
    vf.add_argument("--report-dir", help="write report.json, report.md (+ scatter PNGs) and junit.xml here")
    vf.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    vf.set_defaults(func=cmd_verify)

    nm = sub.add_parser("numerics", help="refresh a model's recorded numerics table (every target x precision)")
    nm.add_argument("model", help="zoo name, e.g. gend-clip-b16-fp32 (a family name means its default)")
    nm.add_argument("--data", required=True, help="data folder with manifest.csv (reference, calibration)")
    nm.add_argument("--targets", default="all")
    nm.add_argument("--precisions", default="fp32,int8")
    nm.add_argument("--out", help="folder for MODEL.md and MODEL.json (default: the family's numerics/)")
    nm.add_argument("--no-validation", action="store_true",
                    help="do not also score each artifact on the validation set (halves the time; rows then have no validation AUC)")
    nm.set_defaults(func=cmd_numerics)

    sd = sub.add_parser("sample-data", help="write a small labelled face set from the packaged photo (no data needed)")
    sd.add_argument("out", help="folder to create (images/ + manifest.csv)")
    sd.add_argument("--count", type=int, default=32, help="faces to write, half of them self-blended fakes")
    sd.set_defaults(func=cmd_sample_data)

    cb = sub.add_parser("calibration", help="record the face statistics an INT8 build needs, to ship with the weights")
    cb_sub = cb.add_subparsers(title="calibration commands", metavar="ACTION")
    cr = cb_sub.add_parser("record", help="measure SmoothQuant maxima on a data folder (minus the packaged photo's source)")
    cr.add_argument("model", help="zoo name, e.g. gend-clip-b16-fp32 (a family name means its default)")
    cr.add_argument("--data", required=True, help="data folder with manifest.csv")
    cr.add_argument("--out", help="profile file (default: beside the weights in the package)")
    cr.set_defaults(func=cmd_calibration_record)

    dr = sub.add_parser("doctor", help="this device, its runtimes, and what load() would pick")
    dr.set_defaults(func=cmd_doctor)

    ls = sub.add_parser("models", help="list the model zoo")
    ls.set_defaults(func=cmd_models)
    return p


def _expand(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        else:
            out.append(p)
    return out


def cmd_predict(args) -> int:
    from . import load

    inputs = _expand(args.images)
    det = load(args.model, target=args.target, prefer="first-answer" if len(inputs) <= ONE_SHOT_INPUTS else "throughput")
    rows = []
    for image in inputs:
        try:
            if is_video(image):
                rows.append(det.predict_video(image, fps=args.fps, max_frames=args.max_frames).to_dict())
                continue
            prediction = det.predict(image, all_faces=args.all_faces, explain=bool(args.explain))
            rows.append(_with_drawn_heatmaps(prediction, Path(args.explain)) if args.explain else prediction.to_dict())
            if args.crops:
                _save_crops(prediction, Path(args.crops), rows[-1])
        except InvalidImageError as exc:
            rows.append({"source": image, "error": str(exc), "model": det.spec.name, "runtime": det.runtime})
    truth = read_truth(Path(args.truth)) if args.truth else {}
    for row in rows:
        if Path(row["source"]).name in truth:
            row["truth"] = truth[Path(row["source"]).name]
    if args.json:
        for row in rows:
            print(jsonio.dumps(row))
    else:
        print(format_table(rows))
        if truth:
            print(truth_summary(rows, det.spec.threshold))
    return EXIT_ERROR if any("error" in r for r in rows) else EXIT_OK


def _with_drawn_heatmaps(prediction, out_dir: Path) -> dict:
    """``prediction.to_dict()``, each face's heatmap drawn over its crop into ``out_dir``
    (``<image stem>.face<i>.png``) and the file named in its row."""
    row = prediction.to_dict()
    _write_face_pngs(prediction, out_dir, row, "heatmap_png", lambda face: face.heatmap.overlay())
    return row


def _save_crops(prediction, out_dir: Path, row: dict) -> None:
    """Each face's aligned crop (before JPEG re-encoding) into ``out_dir``, named in its row."""
    _write_face_pngs(prediction, out_dir, row, "crop_png", lambda face: face.crop)


def _write_face_pngs(prediction, out_dir: Path, row: dict, key: str, picture) -> None:
    """``picture(face)`` of each face as ``<image stem>.face<i>.png`` (atomic), its path in ``row["faces"][i][key]``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (face, face_row) in enumerate(zip(prediction.faces, row["faces"])):
        path = out_dir / f"{Path(str(prediction.source)).stem or 'image'}.face{i}.png"
        with atomic_path(path) as tmp:
            picture(face).save(tmp, format="PNG")
        face_row[key] = str(path)


def read_truth(path: Path) -> dict[str, dict]:
    """``file,label[,what]`` rows -> {file name: {"label", "what"}}."""
    with open(path, newline="") as fh:
        return {row["file"]: {"label": row["label"], "what": row.get("what", "")} for row in csv.DictReader(fh)}


def truth_summary(rows: list[dict], threshold: float) -> str:
    """How many labelled faces the model got right at its threshold, said plainly."""
    scored = [r for r in rows if r.get("truth") and r.get("score") is not None and r["truth"]["label"] in ("real", "fake")]
    right = [r for r in scored if r["label"] == r["truth"]["label"]]
    lines = [f"{len(right)} of {len(scored)} labelled faces right at threshold {threshold:.3f} "
             "(p_fake at or above it = fake)."]
    for r in scored:
        verdict = "right" if r in right else "WRONG"
        lines.append(f"  {verdict:<5}  {Path(r['source']).name}: truly {r['truth']['label']} "
                     f"({r['truth']['what']}), scored {r['score']:.3f}")
    return "\n".join(lines + [plain_verdict(scored, threshold)])


def plain_verdict(scored: list[dict], threshold: float) -> str:
    """What the scores above mean, in words a newcomer reads first: which fakes it caught, which
    reals it cleared, and that a handful of samples is an illustration, not a measurement."""
    fakes = [r for r in scored if r["truth"]["label"] == "fake"]
    reals = [r for r in scored if r["truth"]["label"] == "real"]
    caught = sum(r["score"] >= threshold for r in fakes)
    cleared = sum(r["score"] < threshold for r in reals)
    said = f"Plainly: it flagged {caught} of {len(fakes)} fakes and cleared {cleared} of {len(reals)} real faces."
    if caught < len(fakes):
        said += (" The fakes it missed scored below its threshold: it does not see those traces reliably.")
    if cleared < len(reals):
        said += " Real faces above the threshold would be false alarms."
    said += (" A few samples illustrate; the validation AUCs of its model card measure"
             " (0.5 = chance, 1.0 = perfect, on sources it never trained on).")
    return textwrap.fill(said, width=100)


def format_table(rows: list[dict]) -> str:
    with_truth = any("truth" in r for r in rows)
    header = ("image", "label", "p_fake", "faces", "box", "model", "runtime", "ms") + (("truth",) if with_truth else ())
    lines = []
    for r in rows:
        truth = ((r.get("truth") or {}).get("label", "-"),) if with_truth else ()
        if "error" in r:
            lines.append((Path(r["source"]).name, "error", "-", "-", r["error"], r["model"], r["runtime"], "-") + truth)
            continue
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        if r.get("kind") == "video":  # faces: tracks; box: how much of the clip was looked at
            faces, box = f"{len(r['tracks'])} tracks", f"{r['frames_sampled']} frames / {r['duration_s']:.1f} s"
        else:
            faces = str(len(r["faces"]))
            box = "-" if not r["faces"] else ",".join(f"{v:.0f}" for v in r["faces"][0]["box"])
        lines.append((Path(r["source"]).name, r["label"], score, faces, box,
                      r["model"], r["runtime"], f"{r['latency_ms']:.0f}") + truth)
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*l) for l in lines])


def cmd_scan(args) -> int:
    from .scan import ScanConfig, scan

    if args.address and args.engine != "ray":
        raise UsageError("--address names a Ray cluster: use it with --engine ray")
    config = ScanConfig(model=args.model, target=args.target, fps=args.fps, max_frames=args.max_frames,
                        all_faces=args.all_faces, setup=args.setup, threads=args.threads)
    summary = scan(args.inputs, args.out, config, engine=args.engine, workers=args.workers, address=args.address,
                   chunk_size=args.chunk_size, progress=not args.no_progress)
    print(summary)
    return EXIT_OK


def cmd_export(args) -> int:
    if args.platform:
        return cmd_export_bundle(args)
    from . import create_model, export
    from .building.build import VERIFY_SIZE
    from .inference.cached import gate_failure
    from .quantization.calibration import build_sets

    spec = get_spec(args.model)
    reference = create_model(f"{spec.base_name}-fp32")
    verify = None
    if args.verify:
        size = config_for("int8").calibration_size
        verify = build_sets(Path(args.verify), size, VERIFY_SIZE, spec.preprocessing).gate  # sources kept out of calibration
    artifact = export(reference, args.target, precision=args.precision, calibration=args.calibration, out=args.out,
                      spec=spec, verify_on=verify, mixed_precision_steps=args.mixed_precision)
    print(f"{artifact.path}  ({artifact.size_bytes() / 1e6:.1f} MB, {artifact.target}, {artifact.precision})")
    failure = gate_failure(artifact)
    if failure:
        print(f"warning: {failure}", file=sys.stderr)
    return EXIT_OK


def cmd_export_bundle(args) -> int:
    """``export MODEL --for PLATFORM --out DIR``: a bundle takes the INT8 build ``load()`` serves."""
    from .bundles.writer import export_bundle

    refused = [flag for flag, value in [("--out (required)", not args.out), ("--verify", args.verify),
                                        ("--mixed-precision", args.mixed_precision),
                                        ("--precision other than int8", args.precision != "int8")] if value]
    if refused:
        raise UsageError(f"export --for {args.platform}: {', '.join(refused)}; an app bundle ships the "
                         "INT8 builds load() serves, written to --out DIR")
    bundle = export_bundle(args.model, args.platform, args.out, calibration=args.calibration)
    for name in sorted(bundle.manifest["files"]):
        print(f"  {name:40s} {(bundle.path / name).stat().st_size / 1e6:8.2f} MB")
    for target, entry in bundle.manifest["artifacts"].items():
        print(f"{target}: {entry['file']} (metadata embedded: {'yes' if entry['metadata_embedded'] else 'no'}; "
              f"release gate: {entry['release_gate']})")
    print(f"{bundle.path}  ({args.platform} bundle of {bundle.manifest['model']['name']})")
    return EXIT_OK


def _full_precision(name: str) -> ModelSpec:
    """A zoo name, or a family name meaning its recommended model, as the FP32 spec."""
    if name in list_families():
        name = f"{name}-fp32"
    spec = get_spec(name)
    return get_spec(f"{spec.base_name}-fp32")


def cmd_train(args) -> int:
    import torch

    spec = _full_precision(args.model)
    args.model = spec.name
    if args.budget_blocks is None and args.device in ("auto", "cpu") and not torch.cuda.is_available():
        args.budget_blocks = 2  # the CPU default: the full recipe takes hours on 2 cores
    card = load_callable(get_family(spec.family).trainer)(args)
    print(json.dumps((card.get("held_out") or {}).get("mean"), indent=2))
    return EXIT_OK


def cmd_distill(args) -> int:
    spec = student_spec(args.student)
    card = load_callable(get_family(spec.family).trainer)(args)
    print(json.dumps((card.get("held_out") or {}).get("mean"), indent=2))
    return EXIT_OK


def cmd_benchmark(args) -> int:
    from .verification.benchmark import benchmark, format_rows
    from .training.data import build_crops

    crops = build_crops(Path(args.data))
    images, labels = crops.images, crops.labels()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    targets = list(TARGETS) if args.targets == "all" else args.targets.split(",")
    rows = [row for model in args.models.split(",")
            for row in benchmark(targets, args.precisions.split(","), images, labels, calibration=Path(args.data),
                                 model_name=model)]
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(jsonio.dumps([r.to_dict() for r in rows], indent=1))
    return EXIT_OK


def cmd_reference_build(args) -> int:
    from .verification.parity import build_reference

    spec = get_spec(args.model)
    model = f"{spec.base_name}-fp32"
    ref = build_reference(model, args.data, args.out, features=not args.no_features, device=args.device, limit=args.limit)
    m = ref.meta["metrics"] or {}
    print(f"{ref.path}: {len(ref.samples)} faces, {model} on {ref.meta['device']}; "
          + (f"AUC {m['auc']:.4f} AP {m['ap']:.4f} EER {m['eer']:.4f}" if m else "one class only: no AUC"))
    return EXIT_OK


def cmd_verify(args) -> int:
    from .verification.parity import verify
    from .verification.reports import write_reports

    policy = Gate.from_file(args.policy) if args.policy else Gate.release()
    policy = policy.overridden(max_auc_drop=args.max_auc_drop, max_flip_rate=args.max_flip_rate,
                              min_pearson=args.min_pearson, max_eer_increase=args.max_eer_increase,
                              max_p99_abs_diff=args.max_p99_abs_diff, min_feature_cosine=args.min_feature_cosine)
    results = [verify(path, args.reference, data=args.data, policy=policy) for path in args.artifacts]
    for reason in {policy.too_few_faces(r.metrics.n) for r in results} - {None}:
        print(f"note: {reason}", file=sys.stderr)
    if args.report_dir:
        paths = write_reports(results, args.report_dir)
        print(f"reports: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    if args.json:
        print(jsonio.dumps([r.to_dict() for r in results], indent=1))
    else:
        if results:
            where = results[0].checked_on
            print(f"checked on CPU class {where['cpu_class']} ({', '.join(where['features']) or 'no INT8 extensions'})")
        for r in results:
            m = r.metrics
            verdict = "PASS " if r.passed else "DRIFT"
            failed = "; ".join(f"{c.metric}={c.value:.4g} (limit {'<=' if c.kind == 'max' else '>='} {c.limit:g})"
                               for c in r.failures)
            ev = r.flip_evidence
            bound = f" (bound {ev['judged_rate']:.2%}, margin {ev['margin']:+.2%})" if ev.get("margin") is not None else ""
            print(f"{verdict} {r.name:<18} pearson {m.pearson:.4f}  flips {m.flips}/{m.n}, {ev['flips_near_threshold']:.2f} "
                  f"near thr.{bound}  dAUC {_signed(m.auc_drop)}  p99|dp| {m.p99_abs_diff:.3f}"
                  + (f"  FAILED: {failed}" if failed else ""))
    return EXIT_OK if all(r.passed for r in results) else EXIT_DRIFT


def _signed(value) -> str:
    return "-" if value is None else f"{-value:+.4f}"


def cmd_numerics(args) -> int:
    from .verification.numerics import refresh

    targets = list(TARGETS) if args.targets == "all" else args.targets.split(",")
    spec = _full_precision(args.model)
    out = Path(args.out) if args.out else get_family(spec.family).numerics_path(spec.base_name).parent
    path = refresh(spec.base_name, Path(args.data), targets, args.precisions.split(","), out,
                   validate=not args.no_validation)
    print(path.read_text())
    return EXIT_OK


def cmd_sample_data(args) -> int:
    from .quantization.calibration import write_packaged_set

    out = write_packaged_set(args.out, args.count, get_spec("gend-fp32").preprocessing)
    print(f"{out}: {args.count} faces + manifest.csv")
    return EXIT_OK


def cmd_calibration_record(args) -> int:
    from .quantization.profile import record_profile

    path = record_profile(_full_precision(args.model), Path(args.data), out=Path(args.out) if args.out else None)
    print(f"{path}: SmoothQuant maxima recorded")
    return EXIT_OK


def cmd_doctor(args) -> int:
    info = device_info()
    order = speed_order(info)
    print(f"device: {info.system} {info.machine}, CPU {info.cpu_vendor or 'unknown'} {info.cpu_model}, {info.cpus} cores")
    print(f"CPU features: {', '.join(info.feature_names()) or 'none of note'} -> class {info.cpu_class}")
    print(f"INT8 speed order for {info.cpu_class} ({'measured' if order.measured else 'assumed'}): "
          f"{' > '.join(preference(info))}")
    print(f"  evidence: {order.evidence}")
    for name, target in TARGETS.items():
        cls = runtime_class(name)
        state = f"available ({cls.package} {cls.version()})" if cls.is_available() else f"missing: pip install 'deepfake-sdk[{target.extra}]'"
        measured = order.startup.get(name)
        cost = f"; first answer {measured.first_answer_s:.1f} s, then {measured.steady_ms:.0f} ms/image" if measured else ""
        print(f"  {name:<11} {state}{cost}")
    if order.startup:
        print(f"  start-up evidence: {order.startup_evidence}")
    try:
        spec = get_spec(DEFAULT_MODEL)
        for prefer, who in (("throughput", f"load('{DEFAULT_MODEL}')"), ("first-answer", "a one-shot `predict`")):
            sel = select_target("int8", drifting=recorded_drift(spec), prefer=prefer)
            print(f"{who} = {spec.name} would use: {sel.target} ({sel.reason})")
    except DeepfakeSDKError as exc:
        print(f"load('{DEFAULT_MODEL}') cannot run here: {exc}")
    _print_cached_builds()
    return EXIT_OK


def _print_cached_builds() -> None:
    """Every artifact in the cache, its build gate (a build that missed it is never silent) and the
    release verdict recorded for its model on its target, with the flip rate's 95% upper bound."""
    from .inference.cached import gate_failure

    folders = sorted(p for p in (cache_dir() / "artifacts").glob("*") if (p / "manifest.json").is_file()) \
        if (cache_dir() / "artifacts").is_dir() else []
    print(f"cached artifacts ({cache_dir() / 'artifacts'}): {len(folders) or 'none'}")
    for folder in folders:
        try:
            artifact = Artifact.load(folder)
        except DeepfakeSDKError as exc:
            print(f"  {folder.name}: DAMAGED ({exc})")
            continue
        report = artifact.manifest.get("mixed_precision") or {}
        failure = gate_failure(artifact)
        state = f"GATE MISSED: {failure}" if failure else (
            "gate passed" if report.get("passed") else report.get("skipped", "no build gate"))
        where = (report.get("checked_on") or {}).get("cpu_class")
        print(f"  {folder.name}: {state}" + (f" (checked on {where})" if where and not failure else "")
              + f"; {release_verdict(artifact)}")


def release_verdict(artifact: Artifact) -> str:
    """What ``deepfake-sdk numerics`` recorded for this artifact's model on its target and precision:
    the verdict, the flips on the release faces and the 95% upper bound of their rate."""
    from .verification.gates import wilson_upper_bound

    try:
        spec = get_spec(f"{artifact.manifest['model']['name']}-{artifact.precision}")
        record = json.loads(get_family(spec.family).numerics_record(spec.base_name).read_text())
    except (DeepfakeSDKError, OSError, ValueError, KeyError):
        return "release: not recorded"
    row = next((r for r in record.get("rows", []) if r.get("target") == artifact.target
                and r.get("precision") == artifact.precision), None)
    if row is None:
        return "release: not recorded"
    when = f"recorded {row.get('measured', record.get('date', '?'))}"
    evidence = row.get("flip_evidence")
    if evidence:
        return (f"release: {row.get('status')}, {evidence['flips']}/{evidence['faces']} flips "
                f"({evidence['flips_near_threshold']:.2f} averaged near the threshold), 95% upper bound "
                f"{evidence['judged_rate']:.2%} of {evidence['limit']:.0%} allowed ({when} on "
                f"{row.get('cpu_class', '?')}; `deepfake-sdk verify` re-checks)")
    n = (record.get("faces") or {}).get("release_gate", {}).get("faces")
    if row.get("flip_rate") is None or not n:
        return f"release: {row.get('status')} ({when})"
    flips = round(row["flip_rate"] * n)
    return (f"release: {row.get('status')}, {flips}/{n} flips, 95% upper bound "
            f"{wilson_upper_bound(flips, n):.1%} ({when}; `deepfake-sdk verify` re-checks)")


def cmd_card(args) -> int:
    spec = get_spec(args.model)
    path = spec.card_path
    if path is None or not path.is_file():
        raise UsageError(f"{spec.name} has no model card")
    card = json.loads(path.read_text())
    if args.attach:
        card = _attached(card, args.attach, path)
    if args.videos:
        card = _with_videos(card, spec, Path(args.videos), args.fps, args.max_frames, path)
    if args.validate:
        card = _with_validation(card, spec, Path(args.validate), path)
    print(jsonio.dumps(card, indent=1) if args.json else format_card(spec, card))
    return EXIT_OK


def _attached(card: dict, others: list[str], path: Path) -> dict:
    """``card`` with the fold AUCs of ``others`` beside its own, written back to ``path``."""
    for other in others:
        try:
            card = attach_comparison(card, json.loads(Path(other).read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot attach {other}: {exc}") from None
    _write_card(path, card)
    return card


def _with_videos(card: dict, spec: ModelSpec, data: Path, fps: float, max_frames: int, path: Path) -> dict:
    """``card`` with its ``videos`` section measured now by the FP32 reference, written back to ``path``."""
    from . import load
    from .training.videos import video_evaluation

    card = {**card, "videos": video_evaluation(load(f"{spec.base_name}-fp32"), data, fps, max_frames)}
    _write_card(path, card)
    return card


def _with_validation(card: dict, spec: ModelSpec, data: Path, path: Path) -> dict:
    """``card`` with its ``validation`` section measured now by the FP32 reference, written back to
    ``path`` (a recipe that chose among variants on validation writes its own, with the count)."""
    from .verification.numerics import reference_for
    from .training import validation

    if not validation.has_validation(data):
        raise UsageError(f"{data} has no {validation.VALIDATION_MANIFEST}")
    ref = reference_for(spec.base_name, validation.validation_folder(data))
    measured = validation.scored_report(data, [r["path"] for r in ref.samples], ref.probs)
    earlier = card.get("validation") or {}
    card = {**card, "validation": {**{k: v for k, v in earlier.items() if k in ("variants", "variants_compared", "chosen")},
                                   "manifest": validation.VALIDATION_MANIFEST, "faces": len(ref.samples),
                                   **measured, "measured": datetime.date.today().isoformat(),
                                   "note": earlier.get("note") or "AUC of the FP32 reference on faces of sources no "
                                   "training manifest holds; 95% bootstrap intervals over groups"}}
    _write_card(path, card)
    return card


def _write_card(path: Path, card: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(jsonio.dumps(card, indent=2) + "\n")


def video_line(card: dict) -> str:
    """The card's video AUC in a sentence, saying whether its clips were held out."""
    v = card.get("videos")
    if not v:
        return "videos: not measured (deepfake-sdk card MODEL --videos DATA)"
    where = "held-out sources" if v["held_out"] else f"sources seen in training ({', '.join(v['sources_seen_in_training'])})"
    return (f"videos: AUC {_fmt(v['auc'])} over {v['n_real']} real and {v['n_fake']} fake clips of {where}; "
            f"{v['no_face']} without a face ({v['fps']:g} fps, <= {v['max_frames']} frames, {v['measured']})")


def format_card(spec: ModelSpec, card: dict) -> str:
    """The held-out numbers of a card, each beside the controls measured on the same fold."""
    held = card.get("held_out") or {}
    if not held:
        return _format_early_card(spec, card)
    compared = [c["model"] for c in held.get("compared_with", [])]
    others = [comparison_column(name) for name in compared]
    lines = [f"{spec.name}: {card.get('architecture', '')}",
             f"trained ({card.get('recipe', '?')} recipe) on {card.get('data', {}).get('crops', '?')} crops; "
             f"{held.get('real_pool_faces', '?')} real faces of {len(held.get('real_pool_sources', []))} sources held out of "
             + held.get("real_pool_held_out_of", "all training"), "",
             f"{'held-out fold':<28}{'real':>6}{'fake':>6}{'AUC':>8}{'frozen probe':>14}{'metadata only':>15}"
             + "".join(f"{name:>22}" for name in compared)]
    for f in held.get("folds", []):
        lines.append(f"{f['name']:<28}{f['test_real']:>6}{f['test_fake']:>6}{_fmt(f.get('auc')):>8}"
                     f"{_fmt(f.get('auc_frozen_probe')):>14}{_fmt(f.get('auc_metadata_control')):>15}"
                     + "".join(f"{_fmt(f.get(c)):>22}" for c in others))
    for kind, mean in (held.get("mean") or {}).items():
        lines.append(f"{'mean of ' + kind + ' folds':<40}{_fmt(mean.get('auc')):>8}{_fmt(mean.get('auc_frozen_probe')):>14}"
                     f"{_fmt(mean.get('auc_metadata_control')):>15}" + "".join(f"{_fmt(mean.get(c)):>22}" for c in others))
    thr = card.get("threshold") or {}
    if thr:
        lines += ["", f"threshold {thr['value']:.3f}: {thr['chosen_at_fpr']:.0%} false positives on {thr['on']}"]
    lines.append(textwrap.fill(video_line(card), width=100))
    return "\n".join(validation_lines(card) + lines + ["", plain_card(held, card.get("validation"))])


def validation_lines(card: dict) -> list[str]:
    """The yardstick first: AUC on the validation set's unseen sources, per family, each with its
    95% interval and the metadata-only control's AUC beside it."""
    v = card.get("validation")
    if not v:
        return ["validation: not measured (deepfake-sdk card MODEL --validate DATA)", ""]
    lines = [f"validation ({v.get('faces')} faces of sources no training manifest holds; 95% bootstrap intervals "
             "over groups)", f"{'':<22}{'real':>6}{'fake':>6}{'AUC':>8}{'interval':>16}{'metadata only':>15}"]
    for name, row in v.items():
        if isinstance(row, dict) and "auc" in row and "ci95" in row:
            low, high = row["ci95"]
            lines.append(f"{name:<22}{row['real']:>6}{row['fake']:>6}{_fmt(row['auc']):>8}"
                         f"{'[' + _fmt(low) + ', ' + _fmt(high) + ']':>16}"
                         f"{_fmt((row.get('metadata_control') or {}).get('auc')):>15}")
    if v.get("variants_compared"):
        lines.append(f"chosen among {v['variants_compared']} variants compared on this set (its figure is slightly optimistic)")
    return lines + ["", "stress test: leave-one-family/source-out folds of the training data (small, confounded):"]


def plain_card(held: dict, validation: dict | None = None) -> str:
    """The card's means in a sentence, beside the metadata-only control: whether the detector sees
    more than file traits on faces from families and sources it never trained on."""
    said = []
    if validation and "overall" in validation:
        row = validation["overall"]
        control = (row.get("metadata_control") or {}).get("auc")
        beaten = [f for f, r in validation.items() if isinstance(r, dict) and "ci95" in r and f != "overall"
                  and r["auc"] <= (r.get("metadata_control") or {}).get("auc", 0)]
        said.append(f"on the validation set's unseen sources it scores AUC {row['auc']:.2f} "
                    f"[{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}] against the metadata-only control's "
                    f"{_fmt(control)}" + (f", yet not above it on {', '.join(beaten)}" if beaten else
                                          ", and is above it on every family"))
    for kind, mean in (held.get("mean") or {}).items():
        auc, control = mean.get("auc"), mean.get("auc_metadata_control")
        if auc is None or control is None:
            continue
        verdict = "above" if auc > control else "NOT above"
        said.append(f"on unseen {kind} folds it averages AUC {auc:.2f}, {verdict} the metadata-only control's {control:.2f}")
    if not said:
        return "Plainly: this card has no held-out means to judge by."
    return textwrap.fill("Plainly: " + "; ".join(said) + ". 0.5 is chance; a detector worth trusting on new "
                         "fakes is well above both.", width=100)


def _format_early_card(spec: ModelSpec, card: dict) -> str:
    """A card from before the held-out folds (leave-one-domain-out only): say what it measured
    and what it did not, rather than an empty table."""
    lodo = card.get("leave_one_domain_out") or {}
    lines = [f"{spec.name}: {card.get('architecture', '')}",
             f"trained with `{card.get('command', '?')}` on {card.get('data', {}).get('crops', '?')} crops", "",
             "held out: one domain at a time (no family/source folds, no metadata or probe control on these tensors):"]
    lines += [f"  {name:<26} AUC {_fmt(row.get('auc'))}  ({row.get('n_real')} real, {row.get('n_fake')} fake)"
              for name, row in lodo.items() if isinstance(row, dict)]
    lines.append("  no held-out numbers recorded" if not lodo else f"  mean AUC {_fmt(lodo.get('mean_auc'))}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def cmd_models(args) -> int:
    for name in list_models():
        spec = get_spec(name)
        alias = f" (= {spec.name})" if spec.name != name else ""
        print(f"{name:<22} {spec.description}{alias}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
