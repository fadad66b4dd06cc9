"""Scan throughput on this machine: one process, a local process pool, and Ray, interleaved.

    python benchmarks/scan_throughput.py --data ../shared/data --images 48 --out benchmarks/results/scan

Scans the first ``--images`` images of ``manifest.csv`` (and ``--videos`` clips of ``videos.csv``)
with each engine in turn, ``--rounds`` times round-robin, each run into a fresh results folder,
timing the whole call: worker start-up and model loading included, as a user pays them. Writes
``scan_throughput.json`` and ``scan_throughput.png`` (files/s per engine, every round).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from deepfake_sdk.verification.benchmark import bar_chart
from deepfake_sdk.device import device_info
from deepfake_sdk.scan import ScanConfig, scan

# name -> (engine, workers, threads per worker): one process gets both cores' threads.
ENGINES = {"1 process x 2 threads": ("local", 1, 2), "local pool x2": ("local", 2, 1), "ray x2": ("ray", 2, 1)}


def file_list(data: Path, images: int, videos: int, folder: Path) -> Path:
    """A ``.txt`` list of the chosen media (scan reads lists), so nothing is copied."""
    with open(data / "manifest.csv", newline="") as fh:
        paths = [str(data / r["path"]) for r in csv.DictReader(fh)][:images]
    if videos:
        with open(data / "videos.csv", newline="") as fh:
            paths += [str(data / r["path"]) for r in csv.DictReader(fh)][:videos]
    listing = folder / "files.txt"
    listing.write_text("\n".join(paths) + "\n")
    return listing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--videos", type=int, default=0)
    ap.add_argument("--model", default="gend-int8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scan")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scanbench-"))
    listing = file_list(args.data, args.images, args.videos, work)
    files = len(listing.read_text().split())
    runs: dict[str, list[float]] = {name: [] for name in ENGINES}
    try:
        for round_ in range(args.rounds):
            for name, (engine, workers, threads) in ENGINES.items():
                out = work / f"{engine}{workers}-{round_}.parquet"
                config = ScanConfig(model=args.model, max_frames=16, threads=threads)
                start = time.perf_counter()
                summary = scan([listing], out, config, engine=engine, workers=workers, progress=False)
                seconds = time.perf_counter() - start
                runs[name].append(round(files / seconds, 3))
                print(f"round {round_} {name}: {seconds:.1f} s, {files / seconds:.2f} files/s ({summary})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [{"engine": name, "files_per_s": values, "median_files_per_s": statistics.median(values)}
            for name, values in runs.items()]
    base = rows[0]["median_files_per_s"]
    for row in rows:
        row["vs_1_process"] = round(row["median_files_per_s"] / base, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"cpu": device_info().describe(), "model": args.model, "images": args.images, "videos": args.videos,
              "rounds": args.rounds, "rows": rows, "date": time.strftime("%Y-%m-%d")}
    (args.out / "scan_throughput.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(record, args.out / "scan_throughput.png")
    print(json.dumps(rows, indent=1))


def plot(record: dict, path: Path) -> None:
    bars = [(f"{row['engine']} (round {i})", value) for row in record["rows"] for i, value in enumerate(row["files_per_s"])]
    bar_chart(f"scan throughput, files/s, start-up included ({record['images']} images + {record['videos']} clips, "
              f"{record['model']})", bars, path, left=240)


if __name__ == "__main__":
    main()
