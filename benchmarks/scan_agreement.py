"""Do the scan engines agree on real data, and does a killed scan resume without re-scoring?

    python benchmarks/scan_agreement.py --data ../shared/data --out benchmarks/results/scan

Scans every 6th image of ``manifest.csv`` (up to ``--images``) and every clip of ``videos.csv``
with ``--engine local`` (one process) and ``--engine ray`` (2 actors), compares the rows file by
file, then runs the CLI scan in a subprocess, SIGKILLs it after ``--kill-after`` parts, resumes,
and checks the parts written before the kill were left alone. Writes ``scan_agreement.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepfake_sdk.device import device_info
from deepfake_sdk.scan import ScanConfig, read_results, scan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--kill-after", type=int, default=3, help="parts written before the kill")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scan")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scanagree-"))
    with open(args.data / "manifest.csv", newline="") as fh:
        files = [str(args.data / r["path"]) for r in csv.DictReader(fh)][::6][: args.images]
    with open(args.data / "videos.csv", newline="") as fh:
        files += [str(args.data / r["path"]) for r in csv.DictReader(fh)]
    listing = work / "files.txt"
    listing.write_text("\n".join(files) + "\n")
    config = ScanConfig(model="gend-int8", max_frames=16)
    rows = {}
    for engine, workers in (("local", 1), ("ray", 2)):
        scan([listing], work / f"{engine}.parquet", config, engine=engine, workers=workers, progress=False)
        rows[engine] = read_results(work / f"{engine}.parquet")
    record = {"cpu": device_info().describe(), "files": len(files), "model": config.model, "threads": config.threads,
              "local_vs_ray": compare(rows["local"], rows["ray"]), "killed_and_resumed": killed_scan(listing, work, config, args.kill_after, rows["local"]),
              "date": time.strftime("%Y-%m-%d")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scan_agreement.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


def compare(a: list[dict], b: list[dict]) -> dict:
    assert [r["path"] for r in a] == [r["path"] for r in b], "the engines scanned different files"
    diffs = [abs(x["score"] - y["score"]) for x, y in zip(a, b) if x["score"] is not None and y["score"] is not None]
    return {"rows": len(a), "scored": len(diffs), "max_abs_score_diff": max(diffs, default=0.0),
            "labels_equal": sum(x["label"] == y["label"] for x, y in zip(a, b)),
            "errors_equal": [x["error"] for x in a] == [y["error"] for y in b]}


def killed_scan(listing: Path, work: Path, config: ScanConfig, kill_after: int, expected: list[dict]) -> dict:
    out = work / "killed.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "deepfake_sdk.cli", "scan", str(listing), "--out", str(out),
                             "--model", config.model, "--chunk-size", "4", "--max-frames", str(config.max_frames),
                             "--no-progress"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(out.glob("part-*.parquet"))) < kill_after and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    summary = scan([listing], out, config, progress=False)
    return {"parts_before_kill": len(kept), "skipped_on_resume": summary.skipped, "scored_on_resume": summary.scanned,
            "parts_untouched": all(p.stat().st_mtime_ns == t for p, t in kept.items()),
            "vs_uninterrupted_local": compare(expected, read_results(out))}


if __name__ == "__main__":
    main()
