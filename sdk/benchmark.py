"""Export every target and measure size, parity and latency in one run (Ultralytics-style).

Latency is the median of repeated batch-1 runs after warm-up, all measured in the same process
and run, so ratios between rows are meaningful; absolute times depend on the machine.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .preprocess import to_batch


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

    def to_dict(self) -> dict:
        return asdict(self)


def _latency_ms(run, sample: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        run(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sample)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _scores(run, batch: np.ndarray) -> np.ndarray:
    from .detector import _softmax_fake

    return np.concatenate([_softmax_fake(np.asarray(run(batch[i : i + 16]))) for i in range(0, len(batch), 16)])


def benchmark(targets: list[str], precisions: list[str], crops: np.ndarray, labels: np.ndarray | None,
              calibration=None, repeats: int = 20, model_name: str = "gend") -> list[BenchmarkRow]:
    """Rows for the PyTorch reference and every (target, precision) pair."""
    from . import create_model
    from .api import ensure_artifact
    from .detector import TorchBackend
    from .metrics import roc_auc
    from .runtimes.base import runtime_class, runtime_for
    from .targets import get_target
    from .zoo import get_spec, with_precision

    spec = get_spec(f"{model_name}-fp32")
    batch = to_batch(crops, spec.preprocessing)
    torch_run = TorchBackend(create_model(spec)).run
    reference = _scores(torch_run, batch)
    auc_ref = roc_auc(labels, reference) if labels is not None else None
    rows = [BenchmarkRow("pytorch", "fp32", None, _latency_ms(torch_run, batch[:1], repeats), 1.0, 0.0, auc_ref, 0.0, "ok")]
    for target in targets:
        for precision in precisions:
            if precision not in get_target(target).precisions:
                continue
            try:
                artifact = ensure_artifact(with_precision(spec, precision), target, calibration=calibration, progress=False)
            except Exception as exc:  # one failing target must not hide the others
                rows.append(BenchmarkRow(target, precision, None, None, None, None, None, None, f"export failed: {exc}"[:200]))
                continue
            size = artifact.size_bytes() / 1e6
            if not runtime_class(target).is_available():
                rows.append(BenchmarkRow(target, precision, size, None, None, None, None, None, "exported; runtime not available here"))
                continue
            run = runtime_for(artifact).run
            scores = _scores(run, batch)
            auc = roc_auc(labels, scores) if labels is not None else None
            rows.append(BenchmarkRow(
                target, precision, round(size, 2), _latency_ms(run, batch[:1], repeats),
                float(np.corrcoef(reference, scores)[0, 1]), float(np.mean((reference >= 0.5) != (scores >= 0.5))),
                auc, (auc - auc_ref) if auc is not None and auc_ref is not None else None, "ok"))
    return rows


def format_rows(rows: list[BenchmarkRow]) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [f"{'target':<11}{'prec':<6}{'MB':>8}{'ms':>9}{'pearson':>9}{'flips':>8}{'AUC':>8}{'dAUC':>9}  status"]
    for r in rows:
        lines.append(f"{r.target:<11}{r.precision:<6}{f(r.size_mb, '.1f'):>8}{f(r.latency_ms, '.1f'):>9}"
                     f"{f(r.pearson, '.4f'):>9}{f(r.flip_rate, '.3f'):>8}{f(r.auc, '.4f'):>8}{f(r.auc_delta, '+.4f'):>9}  {r.status}")
    return "\n".join(lines)


def plot(rows: list[BenchmarkRow], path: Path) -> None:
    """Bar chart of latency per target/precision (PIL only, no plotting library needed)."""
    from PIL import Image, ImageDraw

    data = [(f"{r.target}/{r.precision}", r.latency_ms) for r in rows if r.latency_ms]
    width, bar_h, left = 640, 22, 150
    img = Image.new("RGB", (width, 40 + bar_h * len(data)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), "batch-1 latency (ms, median; same run)", fill="black")
    top = max(v for _, v in data) if data else 1
    for i, (name, value) in enumerate(data):
        y = 32 + i * bar_h
        draw.text((10, y + 4), name, fill="black")
        draw.rectangle([left, y + 3, left + (width - left - 70) * value / top, y + bar_h - 3],
                       fill="#4c72b0" if name.endswith("int8") else "#999999")
        draw.text((width - 65, y + 4), f"{value:.1f}", fill="black")
    img.save(path)
