"""Start-up and throughput: what a user waits for, per runtime, on this machine.

    python benchmarks/startup.py --rounds 3 --out benchmarks/results/startup \
        [--variant before=/path/to/an/older/installed/package] [--scan-data ../shared/data]

For each runnable target (its artifact already built: a cache hit, as every call after the
first), in fresh processes, runtimes and variants interleaved round by round so machine drift hits
all alike: the time to ``import deepfake_sdk``, ``load(model, target=...)``, the first ``predict``,
the first answer counted from the process's first line (import + load + first predict), the steady
``predict`` (median of 5, face detection included), and the wall time of ``deepfake-sdk predict
face.jpg`` (interpreter start included). ``--variant NAME=PATH`` adds the same rows for a package
installed under PATH (``pip install --no-deps --target PATH <wheel>``), e.g. the code before a
change; the current checkout is ``after``. With ``--scan-data``, ``scan`` over ``--scan-files``
images with one 2-thread process, a local pool of 2 and Ray x2, each run twice (a few files, then
all of them) so start-up and steady files/s are reported apart. Writes ``startup.json`` and
``startup.png`` (first answer per runtime and variant) and ``scan.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE = ROOT / "samples" / "astronaut.jpg"
GOAL_FIRST_ANSWER_S = 2.0  # issue 30: the default runtime's first prediction after a cache hit

CHILD = r"""
import time
t0 = time.perf_counter()
import json, sys, warnings
import deepfake_sdk
t1 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    det = deepfake_sdk.load(sys.argv[1], target=sys.argv[2], progress=False)
t2 = time.perf_counter()
det.predict(sys.argv[3])
t3 = time.perf_counter()
steady = []
for _ in range(5):
    s = time.perf_counter()
    det.predict(sys.argv[3])
    steady.append(time.perf_counter() - s)
steady.sort()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2, "first_answer_s": t3 - t0,
                  "steady_ms": 1000 * steady[2], "runtime": det.runtime, "package": deepfake_sdk.__file__}))
"""


def _env(path: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DEEPFAKE_SDK_TARGET"}
    if path:
        env["PYTHONPATH"] = path
    return env


def one_process(model: str, target: str, path: str) -> dict:
    """The phases of one fresh process, and that process's wall time."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, model, target, str(FACE)], capture_output=True, text=True,
                         env=_env(path), cwd=tempfile.gettempdir(), check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {**row, "process_wall_s": time.perf_counter() - start}


def cli_wall(model: str, target: str, path: str) -> float:
    """``deepfake-sdk predict face.jpg`` as a shell runs it (interpreter start to exit)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepfake_sdk.cli", "predict", str(FACE), "--model", model,
                    "--target", target, "--json"], capture_output=True, env=_env(path), cwd=tempfile.gettempdir(),
                   check=True)
    return time.perf_counter() - start


def startup_rows(model: str, targets: list[str], variants: dict[str, str], rounds: int) -> list[dict]:
    runs: dict[tuple[str, str], list[dict]] = {(v, t): [] for v in variants for t in targets}
    for round_ in range(rounds):
        for target in targets:
            for variant, path in variants.items():
                row = one_process(model, target, path)
                row["cli_wall_s"] = cli_wall(model, target, path)
                runs[(variant, target)].append(row)
                print(f"round {round_} {variant:>6} {target:<10} first answer {row['first_answer_s']:.2f} s "
                      f"(import {row['import_s']:.2f}, load {row['load_s']:.2f}, first predict "
                      f"{row['first_predict_s']:.2f}), steady {row['steady_ms']:.0f} ms, CLI {row['cli_wall_s']:.2f} s",
                      flush=True)
    keys = ("import_s", "load_s", "first_predict_s", "first_answer_s", "steady_ms", "process_wall_s", "cli_wall_s")
    return [{"variant": v, "target": t, "runtime": rows[0]["runtime"], "rounds": len(rows),
             **{k: round(statistics.median(r[k] for r in rows), 3) for k in keys},
             "all_first_answer_s": [round(r["first_answer_s"], 3) for r in rows]}
            for (v, t), rows in runs.items()]


def scan_rows(model: str, data: Path, files: int, few: int, rounds: int) -> list[dict]:
    """Each engine's wall time on ``few`` then ``files`` images: steady files/s from the difference,
    start-up as what is left of the short run."""
    from deepfake_sdk.scan import ScanConfig, scan
    from scan_throughput import ENGINES as engines, file_list  # the engines and lists scan_throughput.py times

    work = Path(tempfile.mkdtemp(prefix="startup-scan-"))
    lists = {}
    for n in (few, files):
        (work / str(n)).mkdir()
        lists[n] = file_list(data, n, 0, work / str(n))
    seconds: dict[tuple[str, int], list[float]] = {(e, n): [] for e in engines for n in lists}
    for round_ in range(rounds):
        for name, (engine, workers, threads) in engines.items():
            for n, listing in lists.items():
                start = time.perf_counter()
                scan([listing], work / f"{engine}{workers}-{n}-{round_}.parquet", ScanConfig(model=model, threads=threads),
                     engine=engine, workers=workers, progress=False)
                seconds[(name, n)].append(time.perf_counter() - start)
                print(f"round {round_} scan {name} {n} files: {seconds[(name, n)][-1]:.1f} s", flush=True)
    rows = []
    for name in engines:
        short, long_ = statistics.median(seconds[(name, few)]), statistics.median(seconds[(name, files)])
        rate = (files - few) / (long_ - short)
        rows.append({"engine": name, "files": files, "wall_s": round(long_, 1), "files_per_s_overall": round(files / long_, 2),
                     "steady_files_per_s": round(rate, 2), "startup_s": round(short - few / rate, 1),
                     "runs_s": {str(n): [round(s, 1) for s in seconds[(name, n)]] for n in lists}})
    base = rows[0]["steady_files_per_s"]
    for row in rows:
        row["steady_vs_1_process"] = round(row["steady_files_per_s"] / base, 2)
    return rows


def plot(record: dict, out: Path) -> None:
    from deepfake_sdk.verification.benchmark import bar_chart

    bars = [(f"{r['target']} ({r['variant']})", r["first_answer_s"]) for r in record["startup"]]
    bar_chart(f"first answer after a cache hit, s (import + load + first predict; {record['model']}, "
              f"{record['cpu']['cpu_class']}; goal <= {GOAL_FIRST_ANSWER_S:.0f} s)", bars, out / "startup.png", " s",
              good=lambda v: v <= GOAL_FIRST_ANSWER_S, left=260)
    if record.get("scan"):
        bars = [(f"{r['engine']} steady", r["steady_files_per_s"]) for r in record["scan"]]
        bars += [(f"{r['engine']} start-up s", r["startup_s"]) for r in record["scan"]]
        bar_chart(f"scan of {record['scan'][0]['files']} images: steady files/s and start-up s", bars,
                  out / "scan.png", left=260)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gend-int8")
    ap.add_argument("--targets", default="", help="comma-separated; default every runnable target")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant", action="append", default=[], help="NAME=PATH of another installed package")
    ap.add_argument("--scan-data", type=Path)
    ap.add_argument("--scan-files", type=int, default=216)
    ap.add_argument("--scan-few", type=int, default=16)
    ap.add_argument("--scan-rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup")
    args = ap.parse_args()
    from deepfake_sdk.device import device_info
    from deepfake_sdk.runtimes.base import runtime_class
    from deepfake_sdk.targets import TARGETS

    targets = args.targets.split(",") if args.targets else \
        [t for t in TARGETS if TARGETS[t].predicts_on_linux and runtime_class(t).is_available()]
    variants = dict(v.split("=", 1) for v in args.variant)
    variants["after"] = ""
    record = {"model": args.model, "cpu": device_info().describe(), "cores": os.cpu_count(), "rounds": args.rounds,
              "variants": variants, "date": time.strftime("%Y-%m-%d %H:%M"),
              "goal_first_answer_s": GOAL_FIRST_ANSWER_S,
              "startup": startup_rows(args.model, targets, variants, args.rounds)}
    if args.scan_data:
        record["scan"] = scan_rows(args.model, args.scan_data, args.scan_files, args.scan_few, args.scan_rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(record, args.out)
    for row in record["startup"]:
        print(json.dumps({k: row[k] for k in ("variant", "target", "import_s", "load_s", "first_predict_s",
                                              "first_answer_s", "steady_ms", "cli_wall_s")}))
    for row in record.get("scan", []):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
