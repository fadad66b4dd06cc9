"""Export every target and measure size, parity and latency in one run (Ultralytics-style).

Latency is batch-1, after warm-up. The precisions of one target (FP32, INT8, ...) are timed in
interleaved rounds (FP32, INT8, FP32, INT8, ...), so that whatever drifts on the machine during
the run (clock boost, page cache, a neighbour's job) hits each of them alike: the quoted number
is ``ratio_to_fp32``, the median over rounds of (this precision's time / FP32's time in the same
round). Timing the rows one after another instead moved the TFLite INT8/FP32 ratio between 0.92
and 1.07 on the same artifacts. Absolute times depend on the machine.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..building.build import ensure_artifact
from ..inference.detector import TorchBackend
from ..metrics import roc_auc, softmax_fake
from ..models.factory import create_model
from ..models.flops import model_macs
from ..preprocess import to_batch
from ..runtimes.base import runtime_class, runtime_for
from ..targets import get_target
from ..zoo import card_heldout_auc, get_spec, with_precision
from .roofline import Peak, cpu_peak, peak_fraction

Run = Callable[[np.ndarray], object]


@dataclass(frozen=True)
class BenchmarkRow:
    target: str
    precision: str
    size_mb: float | None
    latency_ms: float | None
    pearson: float | None
    flip_rate: float | None
    auc: float | None
    auc_delta: float | None
    status: str  # "ok", or why the row has no numbers
    ratio_to_fp32: float | None = None  # latency / FP32 latency of the same target, same rounds
    model: str = ""  # zoo base name (gend-clip-b16), when a run covers several models
    gmacs: float | None = None  # multiply-accumulates per image (torch's count of the reference)
    peak_fraction: float | None = None  # 2 x MACs / latency over this CPU's peak for the precision
    heldout_auc: float | None = None  # the model card's mean held-out-family AUC (not this run's crops)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """Median batch-1 latency and median per-round ratio to the first run of the group."""

    latency_ms: float
    ratio_to_first: float


def interleaved_latency(runs: list[Run], sample: np.ndarray, rounds: int, warmup: int = 3) -> list[Timing]:
    """Time ``runs`` on ``sample`` in alternating rounds; ratios are taken within each round."""
    for run in runs:
        for _ in range(warmup):
            run(sample)
    times = np.zeros((rounds, len(runs)))
    for r in range(rounds):
        order = range(len(runs)) if r % 2 == 0 else reversed(range(len(runs)))  # no fixed first slot
        for i in order:
            start = time.perf_counter()
            runs[i](sample)
            times[r, i] = (time.perf_counter() - start) * 1000
    ratios = times / times[:, :1]
    return [Timing(float(np.median(times[:, i])), float(np.median(ratios[:, i]))) for i in range(len(runs))]


def _scores(run: Run, batch: np.ndarray) -> np.ndarray:
    return np.concatenate([softmax_fake(np.asarray(run(batch[i : i + 16]))) for i in range(0, len(batch), 16)])


@dataclass
class _Candidate:
    """One exported (target, precision) pair on its way to a row."""

    precision: str
    size_mb: float | None = None
    run: Run | None = None
    status: str = "ok"


def benchmark(targets: list[str], precisions: list[str], crops: np.ndarray, labels: np.ndarray | None,
              calibration=None, repeats: int = 20, model_name: str = "gend-fp32", peak: Peak | None = None
              ) -> list[BenchmarkRow]:
    """Rows for the PyTorch reference and every (target, precision) pair of one zoo model, with
    the roofline column against ``peak`` (default: this CPU's, :func:`roofline.cpu_peak`)."""
    spec = get_spec(f"{get_spec(model_name).base_name}-fp32")
    batch = to_batch(crops, spec.preprocessing)
    net = create_model(spec)
    macs = model_macs(net, spec.preprocessing.size)
    torch_run = TorchBackend(net).run
    reference = _scores(torch_run, batch)
    auc_ref = roc_auc(labels, reference) if labels is not None else None
    torch_ms = interleaved_latency([torch_run], batch[:1], repeats)[0].latency_ms
    rows = [BenchmarkRow("pytorch", "fp32", None, torch_ms, 1.0, 0.0, auc_ref, 0.0, "ok")]
    for target in targets:
        candidates = _export_all(spec, target, precisions, calibration)
        rows += _measure_target(target, candidates, batch, labels, reference, auc_ref, repeats, spec.threshold)
    peak = peak or cpu_peak()
    return [with_roofline(r, spec.base_name, macs, peak, card_heldout_auc(spec)) for r in rows]


def with_roofline(row: BenchmarkRow, model: str, macs: int, peak: Peak, heldout_auc: float | None) -> BenchmarkRow:
    """``row`` with the model's name, its MACs and the fraction of ``peak`` its latency attains."""
    return BenchmarkRow(**{**row.to_dict(), "model": model, "gmacs": round(macs / 1e9, 3),
                           "peak_fraction": peak_fraction(macs, row.latency_ms, row.precision, peak),
                           "heldout_auc": heldout_auc})


def _export_all(spec, target: str, precisions: list[str], calibration) -> list[_Candidate]:
    candidates = []
    for precision in (p for p in precisions if p in get_target(target).precisions):
        candidate = _Candidate(precision)
        try:
            artifact = ensure_artifact(with_precision(spec, precision), target, calibration=calibration, progress=False)
        except Exception as exc:  # one failing target must not hide the others
            candidate.status = f"export failed: {exc}"[:200]
        else:
            candidate.size_mb = round(artifact.size_bytes() / 1e6, 2)
            if runtime_class(target).is_available():
                candidate.run = runtime_for(artifact).run
            else:
                candidate.status = "exported; runtime not available here"
        candidates.append(candidate)
    return candidates


def _measure_target(target: str, candidates: list[_Candidate], batch: np.ndarray, labels, reference: np.ndarray,
                    auc_ref: float | None, repeats: int, threshold: float = 0.5) -> list[BenchmarkRow]:
    """Parity per candidate, then one interleaved timing of all runnable ones (FP32 first)."""
    runnable = sorted((c for c in candidates if c.run), key=lambda c: c.precision != "fp32")
    timings = dict(zip((c.precision for c in runnable),
                       interleaved_latency([c.run for c in runnable], batch[:1], repeats) if runnable else []))
    has_fp32 = bool(runnable) and runnable[0].precision == "fp32"
    rows = []
    for c in candidates:
        if c.run is None:
            rows.append(BenchmarkRow(target, c.precision, c.size_mb, None, None, None, None, None, c.status))
            continue
        scores = _scores(c.run, batch)
        auc = roc_auc(labels, scores) if labels is not None else None
        timing = timings[c.precision]
        rows.append(BenchmarkRow(
            target, c.precision, c.size_mb, timing.latency_ms,
            float(np.corrcoef(reference, scores)[0, 1]), float(np.mean((reference >= threshold) != (scores >= threshold))),
            auc, (auc - auc_ref) if auc is not None and auc_ref is not None else None, "ok",
            timing.ratio_to_first if has_fp32 else None))
    return rows


def format_rows(rows: list[BenchmarkRow]) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    width = max([len(r.model) for r in rows] + [5]) + 2
    lines = [f"{'model':<{width}}{'target':<11}{'prec':<6}{'MB':>8}{'ms':>9}{'x fp32':>8}{'pearson':>9}{'flips':>8}"
             f"{'AUC':>8}{'dAUC':>9}{'GMAC':>7}{'%peak':>7}  status"]
    for r in rows:
        lines.append(f"{r.model or '-':<{width}}{r.target:<11}{r.precision:<6}{f(r.size_mb, '.1f'):>8}{f(r.latency_ms, '.1f'):>9}"
                     f"{f(r.ratio_to_fp32, '.2f'):>8}{f(r.pearson, '.4f'):>9}{f(r.flip_rate, '.3f'):>8}"
                     f"{f(r.auc, '.4f'):>8}{f(r.auc_delta, '+.4f'):>9}{f(r.gmacs, '.2f'):>7}"
                     f"{f(r.peak_fraction and 100 * r.peak_fraction, '.1f'):>7}  {r.status}")
    return "\n".join(lines)


def plot(rows: list[BenchmarkRow], path: Path) -> None:
    """Bar chart of latency per model/target/precision (PIL only, no plotting library needed)."""
    def label(r: BenchmarkRow) -> str:
        return "/".join(p for p in (r.model, r.target, r.precision) if p)

    data = [(label(r), r.latency_ms) for r in rows if r.latency_ms]
    ratios = {label(r): r.ratio_to_fp32 for r in rows}
    width, bar_h, left = 760, 22, 270
    img = Image.new("RGB", (width, 40 + bar_h * len(data)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), "batch-1 latency (ms, median; precisions of a target timed interleaved)", fill="black")
    top = max(v for _, v in data) if data else 1
    for i, (name, value) in enumerate(data):
        y = 32 + i * bar_h
        draw.text((10, y + 4), name, fill="black")
        draw.rectangle([left, y + 3, left + (width - left - 70) * value / top, y + bar_h - 3],
                       fill="#4c72b0" if name.endswith("int8") else "#999999")
        draw.text((width - 65, y + 4), f"{value:.1f}", fill="black")
        if ratios.get(name) is not None and not name.endswith("fp32"):
            draw.text((left + 4, y + 4), f"{ratios[name]:.2f}x fp32", fill="white")
    img.save(path)


def _label(r: BenchmarkRow) -> str:
    return "/".join(p for p in (r.model, r.target, r.precision) if p)


def plot_auc_vs_latency(rows: list[BenchmarkRow], path: Path) -> None:
    """Scatter: batch-1 latency (x, log scale) against the model card's held-out AUC (y)."""
    points = [(r.latency_ms, r.heldout_auc, _label(r)) for r in rows if r.latency_ms and r.heldout_auc]
    width, height, pad = 820, 520, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), "held-out family AUC (model card) vs batch-1 latency (ms, log scale)", fill="black")
    if points:
        lo, hi = np.log10(min(p[0] for p in points)) - 0.1, np.log10(max(p[0] for p in points)) + 0.1
        a_lo, a_hi = min(0.5, min(p[1] for p in points)), max(1.0, max(p[1] for p in points))
        seen: dict[float, int] = {}
        for ms, auc, name in sorted(points):
            x = pad + (width - 2 * pad) * (np.log10(ms) - lo) / (hi - lo)
            y = height - pad - (height - 2 * pad) * (auc - a_lo) / (a_hi - a_lo)
            colour = "#4c72b0" if name.endswith("int8") else "#999999"
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            k = seen[auc] = seen.get(auc, -1) + 1  # one model = one AUC: stagger its labels
            if k == 0:
                draw.text((pad, y - 22), f"{name.split('/')[0]} (held-out AUC {auc:.3f})", fill="black")
            label_y = y + 8 + 12 * (k % 5)
            draw.line([x, y + 4, x, label_y], fill="#cccccc")
            draw.text((x + 2, label_y), f"{'/'.join(name.split('/')[1:])} {ms:.0f}", fill="black")
        draw.text((pad, height - pad + 20), f"{10 ** lo:.1f} ms", fill="black")
        draw.text((width - pad - 60, height - pad + 20), f"{10 ** hi:.0f} ms", fill="black")
        draw.text((4, pad), f"{a_hi:.2f}", fill="black")
        draw.text((4, height - pad), f"{a_lo:.2f}", fill="black")
    img.save(path)


def plot_int8_speedup(rows: list[BenchmarkRow], path: Path) -> None:
    """Bars: FP32 latency / INT8 latency of the same runtime, timed interleaved (>1 = INT8 faster)."""
    data = [(_label(r), 1 / r.ratio_to_fp32) for r in rows if r.precision == "int8" and r.ratio_to_fp32]
    bar_chart("INT8 speed-up over FP32 on the same runtime (x; interleaved rounds)", data, path,
              unit="x", good=lambda v: v >= 1)


def bar_chart(title: str, bars: list[tuple[str, float]], path: Path, unit: str = "",
              good=lambda value: True, left: int = 300) -> None:
    """Horizontal bars with their values (PIL only): blue where ``good(value)``, red elsewhere."""
    width, bar_h = 760, 22
    img = Image.new("RGB", (width, 40 + bar_h * max(len(bars), 1)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), title, fill="black")
    top = max([v for _, v in bars] + [1.0])
    for i, (name, value) in enumerate(bars):
        y = 32 + i * bar_h
        draw.text((10, y + 4), name, fill="black")
        draw.rectangle([left, y + 3, left + (width - left - 70) * value / top, y + bar_h - 3],
                       fill="#4c72b0" if good(value) else "#c44e52")
        draw.text((width - 65, y + 4), f"{value:.2f}{unit}", fill="black")
    img.save(path)
