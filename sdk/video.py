"""Videos: decode (bounded), sample frames, find and track faces, score, aggregate.

A clip is judged by its faces over time, not by one frame: faces are tracked across the sampled
frames (greedy IoU matching), each track is scored frame by frame, and a track's score is a
robust top-k mean (the mean of its highest quarter of frame scores), so a few swapped frames in a
long clip count while one odd frame does not decide. The video's score is its most fake track's.
Decoding uses PyAV (``pip install 'deepfake-sdk[video]'``): sequential decode keeping the wanted
frames, since per-frame seeks re-decode from keyframes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import InvalidImageError, MissingDependencyError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"})
MAX_VIDEO_BYTES = 4 * 1024**3
MAX_FRAME_PIXELS = 8192 * 4320  # 8K; more is refused before decoding a frame
TRACK_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much
TRACK_PATIENCE = 3  # sampled frames a track may miss (occlusion, a missed detection) before it ends
TOP_FRACTION = 0.25  # a track's robust score: mean of its highest quarter of frame scores


class InvalidVideoError(InvalidImageError):
    """The input is not a decodable video, holds no video stream, or is too large."""


def is_video(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class SampledFrame:
    index: int  # frame number in the stream
    time_s: float
    image: Image.Image = field(repr=False)


def sample_frames(path: str | Path, fps: float = 2.0, max_frames: int = 64) -> tuple[list[SampledFrame], dict]:
    """Frames at ``fps`` (at most ``max_frames``, spread over the clip), and the stream's facts."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("videos need PyAV: pip install 'deepfake-sdk[video]'") from exc
    path = Path(path)
    if not path.is_file():
        raise InvalidVideoError(f"{path}: no such video file")
    if path.stat().st_size > MAX_VIDEO_BYTES:
        raise InvalidVideoError(f"{path}: {path.stat().st_size / 1e9:.1f} GB is over the {MAX_VIDEO_BYTES / 1e9:.0f} GB limit")
    if fps <= 0 or max_frames < 1:
        raise InvalidVideoError(f"{path}: fps must be > 0 and max_frames >= 1 (got {fps}, {max_frames})")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidVideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.width * stream.height > MAX_FRAME_PIXELS:
                raise InvalidVideoError(f"{path}: {stream.width}x{stream.height} frames are over the 8K limit")
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            duration = _duration(stream, container, rate)
            wanted = _wanted_times(duration, fps, max_frames)
            frames = list(_decode_at(container, stream, wanted, rate))
    except InvalidVideoError:
        raise
    except Exception as exc:  # PyAV raises its own error types for broken or non-video files
        raise InvalidVideoError(f"{path}: cannot decode as video ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise InvalidVideoError(f"{path}: no frame could be decoded")
    info = {"duration_s": round(duration, 3), "stream_fps": round(rate, 3), "width": frames[0].image.width,
            "height": frames[0].image.height, "frames_sampled": len(frames)}
    return frames, info


def _duration(stream, container, rate: float) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return (stream.frames or 0) / rate  # MKV can report neither; frames may then be 0 too


def _wanted_times(duration: float, fps: float, max_frames: int) -> list[float]:
    """Sample times: every 1/fps seconds, thinned evenly to ``max_frames``; the first frame at least."""
    count = max(1, int(math.floor(duration * fps)) if duration > 0 else max_frames)
    times = [i / fps for i in range(count)]
    if len(times) > max_frames:
        times = [times[round(i * (len(times) - 1) / max(1, max_frames - 1))] for i in range(max_frames)]
    return times


def _decode_at(container, stream, wanted: list[float], rate: float) -> Iterator[SampledFrame]:
    """Decode sequentially; keep the first frame at or after each wanted time (a frame without a
    timestamp is placed by its index at the stream's rate)."""
    pending = iter(wanted)
    target = next(pending, None)
    for index, frame in enumerate(container.decode(stream)):
        if target is None:
            return
        time_s = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else index / rate
        if time_s + 1e-6 >= target:
            yield SampledFrame(index, round(time_s, 3), frame.to_image().convert("RGB"))
            while target is not None and target <= time_s + 1e-6:
                target = next(pending, None)


@dataclass(frozen=True)
class TrackedFace:
    track: int
    box: tuple[float, float, float, float]
    score: float
    detector_confidence: float

    def to_dict(self) -> dict:
        return {"track": self.track, "box": list(self.box), "score": self.score,
                "detector_confidence": self.detector_confidence}


@dataclass(frozen=True)
class FrameResult:
    index: int
    time_s: float
    faces: tuple[TrackedFace, ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "time_s": self.time_s, "faces": [f.to_dict() for f in self.faces]}


@dataclass(frozen=True)
class Track:
    """One face followed across sampled frames."""

    id: int
    frames: int
    mean: float
    top_k_mean: float  # mean of the highest TOP_FRACTION of its frame scores
    first_s: float
    last_s: float
    label: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VideoPrediction:
    """Result for one video. ``score`` is the most fake track's robust top-k mean; None, with
    ``label='no_face'``, when no sampled frame holds a face."""

    score: float | None
    label: str
    tracks: tuple[Track, ...]
    timeline: tuple[FrameResult, ...] = field(repr=False)
    model: str
    runtime: str
    latency_ms: float
    source: str
    threshold: float
    info: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"kind": "video", "source": self.source, "score": self.score, "label": self.label,
                "model": self.model, "runtime": self.runtime, "threshold": self.threshold,
                "latency_ms": self.latency_ms, "tracks": [t.to_dict() for t in self.tracks],
                "timeline": [f.to_dict() for f in self.timeline], **self.info}

    def __repr__(self) -> str:
        score = "-" if self.score is None else f"{self.score:.3f}"
        return (f"VideoPrediction({self.label} p_fake={score} tracks={len(self.tracks)} "
                f"frames={len(self.timeline)} model={self.model} runtime={self.runtime})")


class FaceTracker:
    """Greedy IoU tracking across sampled frames: each face joins the live track whose last box
    it overlaps most (IoU >= ``TRACK_IOU``), else starts one; a track unseen for
    ``TRACK_PATIENCE`` sampled frames ends."""

    def __init__(self, iou: float = TRACK_IOU, patience: int = TRACK_PATIENCE):
        self.iou, self.patience = iou, patience
        self.live: dict[int, tuple[tuple[float, ...], int]] = {}  # track -> (last box, last step seen)
        self.next_id = 0
        self.step = 0

    def assign(self, boxes: list[tuple[float, float, float, float]]) -> list[int]:
        self.live = {t: v for t, v in self.live.items() if self.step - v[1] <= self.patience}
        pairs = sorted(((box_iou(b, last), i, t) for i, b in enumerate(boxes) for t, (last, _) in self.live.items()),
                       reverse=True)
        ids: dict[int, int] = {}
        used: set[int] = set()
        for overlap, i, t in pairs:
            if overlap < self.iou:
                break
            if i not in ids and t not in used:
                ids[i] = t
                used.add(t)
        for i in range(len(boxes)):
            if i not in ids:
                ids[i], self.next_id = self.next_id, self.next_id + 1
            self.live[ids[i]] = (boxes[i], self.step)
        self.step += 1
        return [ids[i] for i in range(len(boxes))]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def top_k_mean(scores: list[float], fraction: float = TOP_FRACTION) -> float:
    k = max(1, math.ceil(len(scores) * fraction))
    return float(np.mean(sorted(scores, reverse=True)[:k]))


def summarise_tracks(timeline: list[FrameResult], threshold: float) -> tuple[Track, ...]:
    """Tracks, most fake first; a track seen on one frame only is kept when it is all there is."""
    by_track: dict[int, list[tuple[float, float]]] = {}
    for frame in timeline:
        for face in frame.faces:
            by_track.setdefault(face.track, []).append((frame.time_s, face.score))
    tracks = []
    for tid, seen in by_track.items():
        scores = [s for _, s in seen]
        robust = top_k_mean(scores)
        tracks.append(Track(tid, len(seen), float(np.mean(scores)), robust, seen[0][0], seen[-1][0],
                            "fake" if robust >= threshold else "real"))
    lasting = [t for t in tracks if t.frames > 1] or tracks
    return tuple(sorted(lasting, key=lambda t: t.top_k_mean, reverse=True))
