"""Do two runs of the release gate agree? Row by row, two folders of numerics records.

    # run 1: the committed records (sdk/models/*/numerics/), e.g. from one fresh clone
    # run 2: another fresh clone, another thread count, into a folder of its own:
    DEEPFAKE_SDK_THREADS=1 deepfake-sdk numerics gendf-fp32 --data ../shared/data --precisions int8 \
        --no-validation --out /tmp/run2
    python benchmarks/verdict_agreement.py /tmp/run2 [--against sdk/models]

For every (model, target, precision) row in both, prints the two verdicts, flip counts, band
averages and judged bounds, and the machines (CPU class, threads) they came from; exits 1 when a
verdict differs. Writes ``results/gate/NAME.json`` (``--name``, default ``agreement``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "results" / "gate"


def rows_of(folder: Path) -> dict[tuple[str, str, str], dict]:
    """Every numerics row under ``folder`` (recursively), keyed by (model, target, precision)."""
    out = {}
    for path in sorted(folder.rglob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "rows" not in record or "reference" not in record:
            continue
        for row in record["rows"]:
            out[(record.get("model") or path.stem, row["target"], row["precision"])] = row
    return out


def summary(row: dict) -> dict:
    ev = row.get("flip_evidence") or {}
    return {"status": row["status"], "flips": ev.get("flips"), "near": ev.get("flips_near_threshold"),
            "bound": ev.get("judged_rate"), "pearson": row.get("pearson"), "cpu_class": row.get("cpu_class"),
            "threads": row.get("threads")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="folder of numerics records from the second run")
    ap.add_argument("--against", type=Path, default=Path(__file__).parents[1] / "sdk" / "models",
                    help="folder of the first run's records (default: the committed ones)")
    ap.add_argument("--name", default="agreement", help="results/gate/NAME.json")
    args = ap.parse_args()
    first, second = rows_of(args.against), rows_of(args.run)
    pairs = [(key, summary(first[key]), summary(second[key])) for key in sorted(second) if key in first
             and first[key].get("flip_evidence") and second[key].get("flip_evidence")]
    print("| model | target | verdict 1 / 2 | flips 1 / 2 | near thr. 1 / 2 | bound 1 / 2 | threads 1 / 2 | CPU class |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, target, precision), a, b in pairs:
        print(f"| {model} | {target}-{precision} | {a['status']} / {b['status']} | {a['flips']} / {b['flips']} | "
              f"{a['near']:.2f} / {b['near']:.2f} | {a['bound']:.2%} / {b['bound']:.2%} | "
              f"{a['threads'] or 'default'} / {b['threads'] or 'default'} | {a['cpu_class']} / {b['cpu_class']} |")
    differ = [key for key, a, b in pairs if a["status"] != b["status"]]
    print(f"{len(pairs)} rows compared; verdicts differ on {len(differ)}" + (f": {differ}" if differ else ""))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(
        [{"model": k[0], "target": k[1], "precision": k[2], "first": a, "second": b} for k, a, b in pairs], indent=1) + "\n")
    return 1 if differ or not pairs else 0


if __name__ == "__main__":
    sys.exit(main())
