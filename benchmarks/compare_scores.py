"""Two runs of one build, face by face: where do their scores and decisions differ, and why?

    python benchmarks/compare_scores.py RUN_A.json RUN_B.json

A run is a score file ``deepfake-sdk numerics`` leaves in the cache (``numerics.scores_path``:
``~/.cache/deepfake_sdk/numerics-scores/MODEL-TARGET.json``, copied off each machine) or a
``deepfake-sdk verify --report-dir`` ``report.json`` (its first artifact). Prints, for the same
faces, how far the float references differ (a different CPU runs the float model a little
differently too), how far the artifact's scores differ, and every face whose decision differs
between the runs, with both references and both scores: a face the gate counts as flipped on one
machine and not on the other shows up here with the reason (reference moved, artifact moved).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_run(path: Path) -> dict:
    body = json.loads(path.read_text())
    if isinstance(body, list):  # verify's report.json
        from deepfake_sdk.verification.parity import Reference

        first = body[0]
        ref = Reference.load(first["reference"])
        return {"faces": [s["path"] for s in ref.samples], "reference_scores": ref.probs.tolist(),
                "scores": first["scores"], "threshold": ref.meta["threshold"], "checked_on": first["checked_on"],
                "threads": None}
    return body


def compare_runs(a: dict, b: dict) -> dict:
    """Face-by-face differences of two runs over the faces both scored."""
    index_b = {f: i for i, f in enumerate(b["faces"])}
    common = [(i, index_b[f]) for i, f in enumerate(a["faces"]) if f in index_b]
    ia, ib = (np.array(x) for x in zip(*common))
    ref_a, ref_b = np.array(a["reference_scores"])[ia], np.array(b["reference_scores"])[ib]
    art_a, art_b = np.array(a["scores"])[ia], np.array(b["scores"])[ib]
    t = a["threshold"]
    flip_a, flip_b = (ref_a >= t) != (art_a >= t), (ref_b >= t) != (art_b >= t)
    differ = np.flatnonzero(flip_a != flip_b)
    return {"faces": len(common), "flips": [int(flip_a.sum()), int(flip_b.sum())],
            "reference_max_abs_diff": float(np.max(np.abs(ref_a - ref_b))),
            "artifact_max_abs_diff": float(np.max(np.abs(art_a - art_b))),
            "machines": [a.get("checked_on", {}).get("cpu_class"), b.get("checked_on", {}).get("cpu_class")],
            "threads": [a.get("threads"), b.get("threads")],
            "faces_whose_flip_differs": [{"face": a["faces"][ia[k]], "reference": [ref_a[k], ref_b[k]],
                                          "artifact": [art_a[k], art_b[k]]} for k in differ]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    args = ap.parse_args()
    print(json.dumps(compare_runs(read_run(args.run_a), read_run(args.run_b)), indent=1))


if __name__ == "__main__":
    main()
