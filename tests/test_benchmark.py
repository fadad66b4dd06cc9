from __future__ import annotations

from PIL import Image

from deepfake_sdk.benchmark import BenchmarkRow, format_rows, plot


def test_table_and_plot(tmp_path):
    rows = [BenchmarkRow("pytorch", "fp32", None, 40.0, 1.0, 0.0, 0.98, 0.0, "ok"),
            BenchmarkRow("onnx", "int8", 24.0, 12.5, 0.995, 0.01, 0.979, -0.001, "ok"),
            BenchmarkRow("coreml", "int8", 23.0, None, None, None, None, None, "exported; runtime not available here")]
    table = format_rows(rows)
    assert "onnx" in table and "12.5" in table and "runtime not available" in table
    assert len(table.splitlines()) == 4
    plot(rows, tmp_path / "p.png")
    img = Image.open(tmp_path / "p.png")
    assert img.height == 40 + 22 * 2  # one bar per row with a latency
