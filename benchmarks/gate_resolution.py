"""Does the release gate separate today's builds from a build with 3x their error?

    python benchmarks/gate_resolution.py            # after `deepfake-sdk numerics MODEL ...` runs

Reads the per-face scores each ``numerics`` row left in the cache (``numerics.scores_path``) and,
for every row, judges with the release gate (``Gate.release()``): the build as measured, and the
same build with its error made 3x larger (in logit space: ``logit(ref) + 3 (logit(art) - logit(ref))``,
the same faces moved the same way, three times as far). A limit is useful when every measured
build passes with margin and every 3x build fails. Writes ``results/gate/resolution.json`` and
``results/gate/resolution.png`` (judged flip rate of each row, measured vs 3x, the limit drawn).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deepfake_sdk.verification.gates import Gate, compare
from deepfake_sdk.verification.numerics import scores_path

OUT = Path(__file__).parent / "results" / "gate"
ROWS = [(model, target) for model in ("gend-clip-b16-blocks-int8", "gend-clip-b16-int8", "gendf-int8",
                                      "gend-dinov2-s14-int8", "lfm-int8")
        for target in ("onnx", "openvino", "executorch", "tflite")]


def amplified(reference: np.ndarray, scores: np.ndarray, factor: float) -> np.ndarray:
    """``scores`` with their error against ``reference`` multiplied by ``factor`` in logit space."""
    eps = 1e-7
    logit = lambda p: np.log(np.clip(p, eps, 1 - eps)) - np.log1p(-np.clip(p, eps, 1 - eps))  # noqa: E731
    z = logit(reference) + factor * (logit(scores) - logit(reference))
    return 1.0 / (1.0 + np.exp(-z))


def judge(reference: np.ndarray, scores: np.ndarray, threshold: float, gate: Gate) -> dict:
    m = compare(reference, scores, None, threshold)
    failed = [c.metric for c in gate.checks(m) if not c.passed]
    return {"verdict": "DRIFT: " + ", ".join(failed) if failed else "pass", "pearson": m.pearson,
            "p99_abs_diff": m.p99_abs_diff, **gate.flip_evidence(m)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factor", type=float, default=3.0)
    args = ap.parse_args()
    gate, rows = Gate.release(), []
    for model, target in ROWS:
        path = scores_path(model, target)
        if not path.is_file():
            continue
        body = json.loads(path.read_text())
        ref, art = np.array(body["reference_scores"]), np.array(body["scores"])
        rows.append({"model": model, "target": target, "cpu_class": body["checked_on"].get("cpu_class"),
                     "measured": judge(ref, art, body["threshold"], gate),
                     f"x{args.factor:g}": judge(ref, amplified(ref, art, args.factor), body["threshold"], gate)})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "resolution.json").write_text(json.dumps({"gate": gate.to_dict(), "factor": args.factor, "rows": rows},
                                                    indent=1) + "\n")
    key = f"x{args.factor:g}"
    print(f"| model | target | measured: flips / near thr. / bound / verdict | {key}: flips / near thr. / bound / verdict |")
    print("|---|---|---|---|")
    for r in rows:
        a, b = r["measured"], r[key]
        print(f"| {r['model']} | {r['target']} | {a['flips']} / {a['flips_near_threshold']:.2f} / {a['judged_rate']:.2%} / "
              f"{a['verdict']} | {b['flips']} / {b['flips_near_threshold']:.2f} / {b['judged_rate']:.2%} / {b['verdict']} |")
    plot(rows, key, gate.max_flip_rate, OUT / "resolution.png")


def plot(rows: list[dict], key: str, limit: float, path: Path, width: int = 640, height: int = 360) -> None:
    """One column per row: the measured build's judged flip rate (blue) and the amplified one's (red)."""
    pad, top = 48, max([limit * 1.5] + [r[key]["judged_rate"] for r in rows])
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = lambda v: height - pad - (height - 2 * pad) * v / top  # noqa: E731
    draw.line([pad, y(limit), width - 8, y(limit)], fill="#d62728")
    draw.text((pad + 4, y(limit) - 14), f"limit {limit:.1%} (95% upper bound)", fill="#d62728")
    step = (width - pad - 8) / max(len(rows), 1)
    for i, r in enumerate(rows):
        x = pad + step * (i + 0.5)
        for value, colour in [(r["measured"]["judged_rate"], "#1f77b4"), (r[key]["judged_rate"], "#ff7f0e")]:
            draw.ellipse([x - 3, y(value) - 3, x + 3, y(value) + 3], fill=colour)
    draw.text((pad, 8), f"judged flip rate per numerics row: blue as built, orange {key} error", fill="black")
    draw.line([pad, pad, pad, height - pad], fill="black")
    draw.text((4, y(0) - 6), "0%", fill="black")
    draw.text((4, y(top) - 6), f"{top:.1%}", fill="black")
    img.save(path)


if __name__ == "__main__":
    main()
