from __future__ import annotations

import json

from PIL import Image

import pytest

from deepfake_sdk.verification.benchmark import BenchmarkRow, format_rows, plot, plot_auc_vs_latency, plot_int8_speedup, with_roofline
from deepfake_sdk.device import DeviceInfo
from deepfake_sdk.verification.roofline import clock_ghz, cpu_peak, peak_fraction
from deepfake_sdk.zoo import card_heldout_auc, get_spec


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
    import deepfake_sdk.verification.benchmark as bm

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


# --- the roofline column: this CPU's peak per instruction set, and the fraction a row attains ---

def _cpu(features: set[str], system: str = "Linux", machine: str = "x86_64") -> DeviceInfo:
    return DeviceInfo(system, machine, "GenuineIntel", 2, frozenset(features))


def test_peak_follows_the_integer_instructions_the_cpu_has():
    peaks = {name: cpu_peak(_cpu(feats), cores=2, ghz=(2.0, "test"))
             for name, feats in {"avx2": {"avx2"}, "vnni": {"avx2", "avx512f", "avx512_vnni"},
                                 "amx": {"avx2", "avx512_vnni", "amx_tile", "amx_int8"}}.items()}
    assert [peaks[k].cpu_class for k in ("avx2", "vnni", "amx")] == ["avx2", "avx512-vnni", "amx"]
    assert peaks["avx2"].int8_gops == 2 * 2.0 * 128 and peaks["avx2"].fp32_gflops == 2 * 2.0 * 32
    assert peaks["avx2"].int8_gops < peaks["vnni"].int8_gops < peaks["amx"].int8_gops
    arm = cpu_peak(_cpu({"asimd", "asimddp"}, "Android", "aarch64"), cores=4, ghz=(2.4, "test"))
    assert arm.cpu_class == "neon-dot" and arm.int8_gops == 4 * 2.4 * 64


def test_clock_is_read_from_cpufreq_else_cpuinfo(tmp_path):
    max_freq = tmp_path / "cpuinfo_max_freq"
    max_freq.write_text("3500000\n")
    assert clock_ghz("", max_freq) == (3.5, "cpufreq cpuinfo_max_freq")
    ghz, source = clock_ghz("processor\t: 0\ncpu MHz\t\t: 2100.000\n", tmp_path / "absent")
    assert ghz == 2.1 and "cpu MHz" in source


def test_peak_fraction_divides_attained_arithmetic_by_the_precisions_peak():
    peak = cpu_peak(_cpu({"avx2"}), cores=1, ghz=(1.0, "test"))  # 32 GFLOP/s FP32, 128 GOP/s INT8
    assert peak_fraction(1_000_000_000, 125.0, "fp32", peak) == pytest.approx(16 / 32)
    assert peak_fraction(1_000_000_000, 125.0, "int8", peak) == pytest.approx(16 / 128)
    assert peak_fraction(None, 125.0, "fp32", peak) is None and peak_fraction(10, None, "int8", peak) is None


def test_rows_gain_macs_roofline_and_the_cards_heldout_auc(tmp_path):
    peak = cpu_peak(_cpu({"avx2"}), cores=1, ghz=(1.0, "test"))
    lfm = get_spec("lfm-fp32")
    row = with_roofline(BenchmarkRow("onnx", "int8", 4.0, 12.8, 0.99, 0.0, 0.9, 0.0, "ok", 0.5), "lfm",
                        384_000_000, peak, card_heldout_auc(lfm))
    assert row.model == "lfm" and row.gmacs == 0.384
    assert row.peak_fraction == pytest.approx(2 * 0.384 / 0.0128 / 128)
    assert row.heldout_auc == pytest.approx(json.loads(lfm.card_path.read_text())["held_out"]["mean"]["family"]["auc"])
    assert card_heldout_auc(get_spec("gend-dinov2-s14-fp32")) is None  # its card has no family folds
    assert card_heldout_auc(get_spec("gend-lite-fp32")) is None  # distilled without the folds (--no-eval)
    assert "%peak" in format_rows([row])
    plot_auc_vs_latency([row], tmp_path / "auc.png")
    plot_int8_speedup([row], tmp_path / "speed.png")
    assert Image.open(tmp_path / "auc.png").size[0] > 0 and Image.open(tmp_path / "speed.png").size[1] > 0
