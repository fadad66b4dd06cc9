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


def test_predict_with_truth_says_what_it_got_right(samples, capsys):
    assert main(["predict", str(samples), "--model", "gend-fp32", "--truth", str(samples / "truth.csv")]) == 0
    out = capsys.readouterr().out
    assert "truth" in out.splitlines()[0]
    summary = next(line for line in out.splitlines() if "labelled faces right at threshold" in line)
    right, total = int(summary.split()[0]), int(summary.split()[2])
    assert total == 4 and 0 <= right <= 4  # the cat has no face: not counted
    assert out.count("right  ") + out.count("WRONG  ") == 4
    verdict = next(line for line in out.splitlines() if line.startswith("Plainly:"))
    fakes_wrong = sum(line.startswith("  WRONG") and "truly fake" in line for line in out.splitlines())
    assert f"flagged {2 - fakes_wrong} of 2 fakes" in verdict
    assert ("it missed" in verdict) == (fakes_wrong > 0)


def test_card_prints_held_out_folds_beside_the_controls(tmp_path, capsys, monkeypatch):
    import json as _json
    from dataclasses import replace

    from deepfake_sdk import zoo

    card = {"architecture": "GenD", "recipe": "budget", "data": {"crops": 10},
            "held_out": {"real_pool_faces": 5, "real_pool_sources": ["a"], "compared_with": [{"model": "other-x"}],
                         "folds": [{"name": "family:gan", "kind": "family", "test_real": 5, "test_fake": 3, "auc": 0.9,
                                    "auc_frozen_probe": 0.7, "auc_metadata_control": 0.6, "auc_other_x": 0.8}],
                         "mean": {"family": {"auc": 0.9, "auc_frozen_probe": 0.7, "auc_metadata_control": 0.6,
                                             "auc_other_x": 0.8}}},
            "threshold": {"value": 0.42, "chosen_at_fpr": 0.05, "on": "5 held-out real faces"}}
    (tmp_path / "m.card.json").write_text(_json.dumps(card))
    spec = zoo.get_spec("gend-dinov2-s14-fp32")
    fake = replace(spec, name="cardtest-fp32", weights="m.safetensors")
    monkeypatch.setitem(zoo._REGISTRY, "cardtest-fp32", fake)
    monkeypatch.setattr(type(fake), "weights_path", property(lambda self: tmp_path / self.weights))
    assert main(["card", "cardtest-fp32"]) == 0
    out = capsys.readouterr().out
    assert "family:gan" in out and "0.900" in out and "0.600" in out and "other-x" in out and "threshold 0.420" in out
    assert "unseen family folds it averages AUC 0.90, above the metadata-only control's 0.60" in " ".join(out.split())


def test_plain_card_says_when_the_detector_is_not_above_file_traits():
    from deepfake_sdk.cli import plain_card

    said = " ".join(plain_card({"mean": {"family": {"auc": 0.557, "auc_metadata_control": 0.690},
                                         "source": {"auc": 0.675, "auc_metadata_control": 0.614}}}).split())
    assert "family folds it averages AUC 0.56, NOT above the metadata-only control's 0.69" in said
    assert "source folds it averages AUC 0.68, above the metadata-only control's 0.61" in said
    assert "no held-out means" in plain_card({})


def test_card_attach_writes_another_models_folds_beside_its_own(tmp_path, capsys, monkeypatch):
    """``card --attach`` puts a comparison trained later on the same folds into the card file;
    a card of other data is refused with a clear error, and the card is left as it was."""
    import json as _json
    from dataclasses import replace

    from deepfake_sdk import zoo

    def card(model, aucs, data="m1"):
        folds = [{"name": n, "kind": "family", "test_real": 5, "test_fake": 3, "auc": a} for n, a in aucs.items()]
        return {"model": model, "data": {"manifests": data}, "held_out": {"folds": folds, "mean": {"family": {
            "auc": sum(aucs.values()) / len(aucs)}}}}

    path = tmp_path / "m.card.json"
    path.write_text(_json.dumps(card("mine", {"family:gan": 0.9, "family:diffusion": 0.7})))
    (tmp_path / "other.json").write_text(_json.dumps(card("other-x", {"family:gan": 0.6, "family:diffusion": 0.8})))
    (tmp_path / "alien.json").write_text(_json.dumps(card("alien", {"family:gan": 0.5}, data="m2")))
    spec = replace(zoo.get_spec("gend-dinov2-s14-fp32"), name="cardtest-fp32", weights="m.safetensors")
    monkeypatch.setitem(zoo._REGISTRY, "cardtest-fp32", spec)
    monkeypatch.setattr(type(spec), "weights_path", property(lambda self: tmp_path / self.weights))
    assert main(["card", "cardtest-fp32", "--attach", str(tmp_path / "other.json")]) == 0
    written = _json.loads(path.read_text())
    assert [f["auc_other_x"] for f in written["held_out"]["folds"]] == [0.6, 0.8]
    assert written["held_out"]["mean"]["family"]["auc_other_x"] == 0.7
    assert main(["card", "cardtest-fp32", "--attach", str(tmp_path / "other.json")]) == 0  # again: replaced
    assert len(_json.loads(path.read_text())["held_out"]["compared_with"]) == 1
    before = path.read_text()
    assert main(["card", "cardtest-fp32", "--attach", str(tmp_path / "alien.json")]) == 2
    assert "different data" in capsys.readouterr().err and path.read_text() == before


def test_card_of_the_shipped_default_says_what_was_held_out(capsys):
    assert main(["card", "gend-int8"]) == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "held out" in out and "?" not in out.splitlines()[1]


def test_a_missing_input_is_an_error_row_and_a_failing_exit_code(samples, tmp_path, capsys):
    """Scripts and CI read the exit code: any input that failed (a missing image, a missing video)
    exits 2, the others are still scored, and ``--json`` carries the error per input."""
    from tinymodel import register

    tiny = register().replace("-int8", "-fp32")
    args = [str(tmp_path / "missing.jpg"), str(samples / "astronaut.jpg"), str(tmp_path / "missing.mp4")]
    code = main(["predict", *args, "--model", tiny, "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2 and len(rows) == 3
    assert "error" in rows[0] and "missing.jpg" in rows[0]["error"] and rows[0]["source"] == args[0]
    assert rows[1]["label"] in ("real", "fake") and "error" not in rows[1]
    assert "no such video file" in rows[2]["error"]
    assert main(["predict", args[1], "--model", tiny, "--json"]) == 0
