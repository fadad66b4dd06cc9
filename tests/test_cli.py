"""The command line: help, the demo table, JSON, and error rows with a failing exit code."""
from __future__ import annotations

import json
import subprocess
import sys

from deepfake_sdk.cli import main
from deepfake_sdk.zoo import get_spec


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "deepfake_sdk.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("predict", "export", "train", "doctor", "models"):
        assert command in out


def test_predict_table_has_a_row_per_image(samples, capsys):
    images = sorted(p for p in samples.iterdir() if p.suffix == ".jpg")
    assert main(["predict", str(samples), "--model", "gend-fp32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + len(images)
    assert get_spec("gend-fp32").name in lines[2] and "pytorch" in lines[2]
    assert any("no_face" in line and "cat_no_face" in line for line in lines)


def test_predict_json_and_errors(samples, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    code = main(["predict", str(samples / "astronaut.jpg"), str(bad), "--model", "gend-fp32", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2
    assert rows[0]["label"] in ("real", "fake") and rows[0]["runtime"] == "pytorch"
    assert "not an image" in rows[1]["error"]


def test_doctor_and_models(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "would use" in out
    assert main(["models"]) == 0
    assert "gend-int8" in capsys.readouterr().out


def test_unknown_model_exits_2(capsys):
    assert main(["predict", "x.jpg", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
