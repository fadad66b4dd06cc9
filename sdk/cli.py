"""``deepfake-sdk``: predict, export, train, doctor, models."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import DeepfakeSDKError

EXIT_OK, EXIT_ERROR = 0, 2


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
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--model", default="gend-int8", help="zoo name or artifact folder (default gend-int8)")
    pr.add_argument("--target", help="force a target (onnx, ...); default: chosen for this device")
    pr.add_argument("--all-faces", action="store_true", help="score every face, not only the largest")
    pr.add_argument("--json", action="store_true", help="JSON lines for machines")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="export a model to a target's artifact")
    ex.add_argument("model", help="zoo name, e.g. gend-fp32")
    ex.add_argument("--target", required=True, help="target name")
    ex.add_argument("--precision", default="int8", choices=["int8", "w8", "fp16", "fp32"])
    ex.add_argument("--calibration", help="data folder with manifest.csv (default $DEEPFAKE_SDK_DATA, then packaged)")
    ex.add_argument("--out", help="artifact folder (default: the cache)")
    ex.add_argument("--verify", help="data folder whose crops the INT8 export is checked on (parity in the manifest)")
    ex.add_argument("--mixed-precision", type=int, default=0, metavar="STEPS",
                    help="when the INT8 export misses the parity gate, keep sensitive layers float (up to STEPS re-exports)")
    ex.set_defaults(func=cmd_export)

    tr = sub.add_parser("train", help="train a detector's small trained part")
    tr.add_argument("arch", choices=["gend"])
    tr.add_argument("--data", required=True, help="folder with manifest.csv")
    tr.add_argument("--epochs", type=int, default=4)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default=None, help="where to write tensors + card (default: the package)")
    tr.add_argument("--no-loso", action="store_true", help="skip the leave-one-domain-out evaluation")
    tr.set_defaults(func=cmd_train)

    bm = sub.add_parser("benchmark", help="export every target; print size, parity and latency per format")
    bm.add_argument("--data", required=True, help="folder with manifest.csv (scored crops and calibration)")
    bm.add_argument("--targets", default="all", help="comma-separated targets (default all)")
    bm.add_argument("--precisions", default="fp32,int8")
    bm.add_argument("--limit", type=int, default=0, help="score only the first N crops")
    bm.add_argument("--json", help="also write the rows to this JSON file")
    bm.set_defaults(func=cmd_benchmark)

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
            out += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp"))
        else:
            out.append(p)
    return out


def cmd_predict(args) -> int:
    from . import load
    from .errors import InvalidImageError

    det = load(args.model, target=args.target)
    rows = []
    for image in _expand(args.images):
        try:
            rows.append(det.predict(image, all_faces=args.all_faces).to_dict())
        except InvalidImageError as exc:
            rows.append({"source": image, "error": str(exc), "model": det.spec.name, "runtime": det.runtime})
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(format_table(rows))
    return EXIT_ERROR if any("error" in r for r in rows) else EXIT_OK


def format_table(rows: list[dict]) -> str:
    header = ("image", "label", "p_fake", "faces", "box", "model", "runtime", "ms")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((Path(r["source"]).name, "error", "-", "-", r["error"], r["model"], r["runtime"], "-"))
            continue
        box = "-" if not r["faces"] else ",".join(f"{v:.0f}" for v in r["faces"][0]["box"])
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        lines.append((Path(r["source"]).name, r["label"], score, str(len(r["faces"])), box,
                      r["model"], r["runtime"], f"{r['latency_ms']:.0f}"))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*l) for l in lines])


def cmd_export(args) -> int:
    from . import create_model, export, get_spec

    spec = get_spec(args.model)
    reference = create_model(f"{spec.family}-fp32")
    verify = None
    if args.verify:
        from .api import VERIFY_SIZE
        from .quantization import config_for
        from .quantization.calibration import calibration_set

        offset = config_for("int8").calibration_size
        verify = calibration_set(Path(args.verify), VERIFY_SIZE, spec.preprocessing, offset=offset).crops
    artifact = export(reference, args.target, precision=args.precision, calibration=args.calibration, out=args.out,
                      spec=spec, verify_on=verify, mixed_precision_steps=args.mixed_precision)
    print(f"{artifact.path}  ({artifact.size_bytes() / 1e6:.1f} MB, {artifact.target}, {artifact.precision})")
    return EXIT_OK


def cmd_train(args) -> int:
    from .paths import package_weights_dir
    from .training.recipe import train_recipe
    from .training.train import TrainConfig

    command = " ".join(["deepfake-sdk", "train", args.arch, "--data", args.data, "--epochs", str(args.epochs),
                        "--seed", str(args.seed)] + (["--no-loso"] if args.no_loso else []))
    card = train_recipe(Path(args.data), Path(args.out) if args.out else package_weights_dir(),
                        TrainConfig(epochs=args.epochs, seed=args.seed), loso=not args.no_loso, command=command)
    print(json.dumps(card.get("leave_one_domain_out"), indent=2))
    return EXIT_OK


def cmd_benchmark(args) -> int:
    from .benchmark import benchmark, format_rows
    from .targets import TARGETS
    from .training.data import build_crops

    crops = build_crops(Path(args.data))
    images, labels = crops.images, crops.labels()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    targets = list(TARGETS) if args.targets == "all" else args.targets.split(",")
    rows = benchmark(targets, args.precisions.split(","), images, labels, calibration=Path(args.data))
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    return EXIT_OK


def cmd_doctor(args) -> int:
    from .device import device_info, preference, select_target
    from .runtimes.base import runtime_class
    from .targets import TARGETS

    info = device_info()
    print(f"device: {info.system} {info.machine}, CPU {info.cpu_vendor or 'unknown'}, {info.cpus} cores")
    print(f"target preference here: {' > '.join(preference(info))}")
    for name, target in TARGETS.items():
        cls = runtime_class(name)
        state = f"available ({cls.package} {cls.version()})" if cls.is_available() else f"missing: pip install 'deepfake-sdk[{target.extra}]'"
        print(f"  {name:<11} {state}")
    try:
        sel = select_target("int8")
        print(f"load('gend-int8') would use: {sel.target} ({sel.reason})")
    except DeepfakeSDKError as exc:
        print(f"load('gend-int8') cannot run here: {exc}")
    return EXIT_OK


def cmd_models(args) -> int:
    from .zoo import get_spec, list_models

    for name in list_models():
        print(f"{name:<12} {get_spec(name).description}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
