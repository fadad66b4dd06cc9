"""Videos: frame sampling, face tracking, per-track and per-video scores, the timeline, bad input."""
from __future__ import annotations

import json

import pytest

import deepfake_sdk
from deepfake_sdk.cli import main
from deepfake_sdk.video import FaceTracker, InvalidVideoError, _wanted_times, box_iou, top_k_mean

import tinymodel
from clips import write_clip

pytest.importorskip("av", reason="videos need PyAV: pip install 'deepfake-sdk[video]'")


@pytest.fixture(scope="module")
def detector():
    return deepfake_sdk.load(tinymodel.register(), target="onnx", progress=False)


@pytest.fixture(scope="module")
def face_clip(samples, tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "face.mp4", samples / "astronaut.jpg")


def test_a_moving_face_is_one_track_over_the_sampled_frames(detector, face_clip):
    result = detector.predict_video(face_clip, fps=4, max_frames=64)
    assert result.info["frames_sampled"] == 8 and result.info["duration_s"] == pytest.approx(2.0, abs=0.15)
    times = [f.time_s for f in result.timeline]
    assert times == sorted(times) and times[0] == 0.0 and times[-1] <= 2.0
    assert len(result.tracks) == 1 and result.tracks[0].frames == 8
    track = result.tracks[0]
    frame_scores = [f.faces[0].score for f in result.timeline]
    assert track.top_k_mean == pytest.approx(top_k_mean(frame_scores)) and track.top_k_mean >= track.mean
    assert result.score == track.top_k_mean and result.label == ("fake" if result.score >= result.threshold else "real")
    boxes = [f.faces[0].box for f in result.timeline]
    assert boxes[-1][0] < boxes[0][0], "the face drifts left as the window moves right"
    row = result.to_dict()
    assert json.loads(json.dumps(row))["tracks"][0]["frames"] == 8 and len(row["timeline"]) == 8


def test_max_frames_spreads_samples_over_the_clip(detector, face_clip):
    result = detector.predict_video(face_clip, fps=10, max_frames=3)
    assert [f.time_s for f in result.timeline] == pytest.approx([0.0, 1.0, 1.9], abs=0.11)
    assert _wanted_times(10.0, 2.0, 64) == [i / 2 for i in range(20)]


def test_a_clip_without_faces_says_no_face(detector, samples, tmp_path):
    clip = write_clip(tmp_path / "cat.mp4", samples / "cat_no_face.jpg", seconds=1.0)
    result = detector.predict_video(clip, fps=2)
    assert result.score is None and result.label == "no_face" and result.tracks == ()


@pytest.mark.parametrize("content", [b"", b"not a video at all", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64])
def test_broken_videos_raise_a_clear_error(detector, tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(InvalidVideoError, match="bad.mp4"):
        detector.predict_video(bad)


def test_tracker_keeps_identities_through_a_missed_frame():
    tracker = FaceTracker()
    a, b = (0, 0, 10, 10), (50, 50, 60, 60)
    assert tracker.assign([a, b]) == [0, 1]
    assert tracker.assign([(1, 0, 11, 10)]) == [0]  # b missed one frame
    assert tracker.assign([(51, 50, 61, 60), (2, 0, 12, 10)]) == [1, 0]
    assert tracker.assign([(200, 200, 210, 210)]) == [2]
    assert box_iou(a, a) == 1.0 and box_iou(a, b) == 0.0


def test_predict_command_scores_videos(face_clip, capsys):
    assert main(["predict", str(face_clip), "--model", tinymodel.register(), "--target", "onnx", "--fps", "2"]) == 0
    out = capsys.readouterr().out
    assert "face.mp4" in out and "1 tracks" in out and "4 frames / 2.0 s" in out
    assert main(["predict", str(face_clip), "--model", tinymodel.register(), "--target", "onnx", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["kind"] == "video" and row["frames_sampled"] == 4 and row["timeline"][0]["faces"][0]["track"] == 0


def test_video_evaluation_scores_every_labelled_clip(detector, face_clip, samples, tmp_path):
    """The card's ``videos`` section: one entry per clip of videos.csv, AUC over clips with a face,
    and whether a clip's source trained the model (here no manifest: none did)."""
    import csv
    import shutil

    from deepfake_sdk.training.videos import video_evaluation

    (tmp_path / "videos").mkdir()
    shutil.copy(face_clip, tmp_path / "videos" / "a.mp4")
    write_clip(tmp_path / "videos" / "b.mp4", samples / "astronaut_selfblend.jpg", seconds=1.0)
    write_clip(tmp_path / "videos" / "c.mp4", samples / "cat_no_face.jpg", seconds=1.0)
    with open(tmp_path / "videos.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "source"])
        writer.writerows([["videos/a.mp4", "real", "s1"], ["videos/b.mp4", "fake", "s2"], ["videos/c.mp4", "fake", "s3"]])
    section = video_evaluation(detector, tmp_path, fps=2, max_frames=4)
    assert [c["path"] for c in section["clips"]] == ["videos/a.mp4", "videos/b.mp4", "videos/c.mp4"]
    assert section["n_real"] == 1 and section["n_fake"] == 1 and section["no_face"] == 1
    scores = [c["score"] for c in section["clips"]]
    assert section["auc"] == (1.0 if scores[1] > scores[0] else 0.0 if scores[1] < scores[0] else 0.5)
    assert section["held_out"] is True and section["sources_seen_in_training"] == []
    assert json.loads(json.dumps(section)) == section
