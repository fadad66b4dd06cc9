from __future__ import annotations

from PIL import Image

from deepfake_sdk.benchmark import BenchmarkRow, format_rows, plot


def test_table_and_plot(tmp_path):
    rows = [BenchmarkRow("pytorch", "fp32", None, 40.0, 1.0, 0.0, 0.98, 0.0, "ok"),
            BenchmarkRow("onnx", "int8", 24.0, 12.5, 0.995, 0.01, 0.979, -0.001, "ok"),
            BenchmarkRow("coreml", "int8", 23.0, None, None, None, None, None, "exported; runtime not available here")]
    table = format_rows(rows)
    assert "onnx" in table and "12.5" in table and "runtime not available" in table
    assert len(table.splitlines()) == 4 and table.splitlines()[0].startswith("model")
    plot(rows, tmp_path / "p.png")
    img = Image.open(tmp_path / "p.png")
    assert img.height == 40 + 22 * 2  # one bar per row with a latency


def test_interleaved_latency_takes_ratios_within_rounds(monkeypatch):
    """A fake clock: run B costs twice run A, and the machine slows down 3x halfway through.
    Per-round ratios stay 2.0 while the medians of each row are dragged by the slowdown."""
    import deepfake_sdk.benchmark as bm

    clock = {"now": 0.0, "calls": 0}
    order = []

    def make(name, cost):
        def run(_sample):
            clock["calls"] += 1
            slow = 3.0 if clock["calls"] > 20 else 1.0
            clock["now"] += cost * slow / 1000
            order.append(name)
        return run

    monkeypatch.setattr(bm.time, "perf_counter", lambda: clock["now"])
    timings = bm.interleaved_latency([make("a", 10.0), make("b", 20.0)], sample=None, rounds=9, warmup=1)
    assert timings[0].ratio_to_first == 1.0
    assert abs(timings[1].ratio_to_first - 2.0) < 1e-9
    assert timings[1].latency_ms > timings[0].latency_ms
    measured = order[2:]  # after one warm-up call each
    assert measured[:4] == ["a", "b", "b", "a"]  # the first slot alternates between rounds


def test_ratio_column_in_table():
    rows = [BenchmarkRow("onnx", "fp32", 87.0, 100.0, 1.0, 0.0, 0.98, 0.0, "ok", 1.0),
            BenchmarkRow("onnx", "int8", 24.0, 70.0, 0.998, 0.005, 0.98, 0.0, "ok", 0.7)]
    table = format_rows(rows)
    assert "x fp32" in table.splitlines()[0]
    assert "0.70" in table.splitlines()[2]
