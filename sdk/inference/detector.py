"""``Detector``: image in, fake probability out, whatever runs underneath.

A detector is a face pipeline (detect, align, crop), the spec's preprocessing, and a backend
that maps a batch to logits: the PyTorch reference or any runtime of an exported artifact.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch  # MTCNN (faces) needs it too
from PIL import Image

from ..errors import NonFiniteOutputError, UsageError
from ..faces import FacePipeline
from ..imageio import ImageInput, describe, load_image
from ..metrics import softmax_fake
from ..models.composite import Backend
from ..models.factory import create_model
from ..preprocess import prepare_crop, to_batch
from ..zoo import ModelSpec, get_spec
from .explain import Heatmap

if TYPE_CHECKING:  # video decoding (PyAV) is imported by predict_video only
    from ..video import VideoPrediction


@dataclass(frozen=True)
class FaceScore:
    """One face: its box ``(x1, y1, x2, y2)`` in input pixels and its fake probability."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    detector_confidence: float
    heatmap: Heatmap | None = field(default=None, repr=False, compare=False)  # with ``explain=True``
    # The aligned crop the model scored, before JPEG re-encoding: what an app (web, phone) feeds
    # its own preprocessing to score this face as the SDK did (``predict --crops``).
    crop: Image.Image | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.0f}" for v in self.box)
        return f"FaceScore({self.label} p_fake={self.score:.3f} box=({box}))"

    def to_dict(self) -> dict:
        out = {"box": list(self.box), "score": self.score, "label": self.label,
               "detector_confidence": self.detector_confidence}
        if self.heatmap is not None:
            out["heatmap"] = self.heatmap.to_dict()
        return out


@dataclass(frozen=True)
class Prediction:
    """Result for one image. ``score`` is P(fake) of the largest face (max over faces when
    ``all_faces``); it is None, with ``label='no_face'``, when no face was found."""

    score: float | None
    label: str  # "fake" | "real" | "no_face"
    faces: tuple[FaceScore, ...]
    model: str
    runtime: str
    latency_ms: float
    source: str = ""
    threshold: float = 0.5
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def face_found(self) -> bool:
        return bool(self.faces)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        return self.faces[0].box if self.faces else None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "faces")}
        out["faces"] = [face.to_dict() for face in self.faces]
        return out

    def __repr__(self) -> str:
        score = "-" if self.score is None else f"{self.score:.3f}"
        return (f"Prediction({self.label} p_fake={score} faces={len(self.faces)} model={self.model} "
                f"runtime={self.runtime} {self.latency_ms:.0f} ms)")


class Detector:
    def __init__(self, spec: ModelSpec, backend: Backend, runtime_name: str, artifact=None):
        self.spec = spec
        self.backend = backend
        self.runtime = runtime_name
        self.artifact = artifact
        pp = spec.preprocessing
        self.faces = FacePipeline(size=pp.size, margin=pp.margin)
        self._explainer = None  # the FP32 reference that draws heatmaps, built on first use

    def __repr__(self) -> str:
        return f"Detector(model={self.spec.name}, runtime={self.runtime})"

    def predict(self, image: ImageInput, all_faces: bool = False, explain: bool = False) -> Prediction:
        """Score one image: a path, bytes, PIL image or RGB array (H x W x 3, uint8). With
        ``explain``, each face also carries a :class:`~deepfake_sdk.inference.explain.Heatmap` on its crop."""
        start = time.perf_counter()
        pil = load_image(image)
        faces = self.faces.faces(pil, all_faces=all_faces)
        crops = np.stack([prepare_crop(f.crop, self.spec.preprocessing) for f in faces]) if faces else None
        scores = self.score_crops(crops) if faces else []
        maps = self.explain_crops(crops) if explain and faces else [None] * len(faces)
        thr = self.spec.threshold
        face_scores = tuple(
            FaceScore(tuple(round(v, 1) for v in f.box), float(s), _label(s, thr), round(f.confidence, 4), heatmap=h,
                      crop=f.crop)
            for f, s, h in zip(faces, scores, maps)
        )
        score = max((f.score for f in face_scores), default=None)
        return Prediction(
            score=score,
            label="no_face" if score is None else _label(score, thr),
            faces=face_scores,
            model=self.spec.name,
            runtime=self.runtime,
            latency_ms=(time.perf_counter() - start) * 1000,
            source=describe(image),
            threshold=thr,
        )

    def predict_video(self, path, fps: float = 2.0, max_frames: int = 64) -> VideoPrediction:
        """Score a video: ``fps`` frames a second (at most ``max_frames``, spread over the clip),
        every face found and tracked across them, each track scored by its robust top-k mean, the
        video by its most fake track (:mod:`deepfake_sdk.video`); a timeline of every face."""
        from ..video import FaceTracker, FrameResult, TrackedFace, VideoPrediction, sample_frames, summarise_tracks

        start = time.perf_counter()
        frames, info = sample_frames(path, fps=fps, max_frames=max_frames)
        tracker, timeline = FaceTracker(), []
        for frame in frames:
            faces = self.faces.faces(frame.image, all_faces=True)
            ids = tracker.assign([f.box for f in faces])
            scores = self.score_crops(np.stack([prepare_crop(f.crop, self.spec.preprocessing) for f in faces])) \
                if faces else []
            timeline.append(FrameResult(frame.index, frame.time_s, tuple(
                TrackedFace(tid, tuple(round(v, 1) for v in f.box), float(s), round(f.confidence, 4))
                for tid, f, s in zip(ids, faces, scores))))
        thr = self.spec.threshold
        tracks = summarise_tracks(timeline, thr)
        score = tracks[0].top_k_mean if tracks else None
        return VideoPrediction(score, "no_face" if score is None else _label(score, thr), tracks, tuple(timeline),
                               self.spec.name, self.runtime, (time.perf_counter() - start) * 1000, str(path), thr,
                               {**info, "fps": fps, "max_frames": max_frames})

    def explain_crops(self, crops: np.ndarray) -> list[Heatmap]:
        """A heatmap for each aligned, prepared uint8 crop ``(N, H, W, 3)``, from the FP32 reference:
        exported graphs output logits only, so an artifact's detector draws its maps with the
        reference of the same trained tensors."""
        model = self._reference()
        kind = getattr(model, "heatmap_kind", "")
        if not kind:
            raise UsageError(f"{self.spec.name} has no heatmap: its family does not explain its scores")
        with torch.inference_mode():
            grids = model.explain(torch.from_numpy(to_batch(crops, self.spec.preprocessing))).float().numpy()
        return [Heatmap(g, kind, crops.shape[1], "pytorch", crop=c) for g, c in zip(grids, crops)]

    def _reference(self):
        if isinstance(self.backend, TorchBackend):
            return self.backend.model
        if self._explainer is None:
            self._explainer = create_model(get_spec(f"{self.spec.base_name}-fp32"))
        return self._explainer

    def predict_batch(self, images: Iterable[ImageInput], all_faces: bool = False) -> list[Prediction]:
        return [self.predict(image, all_faces=all_faces) for image in images]

    def score_crops(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """P(fake) of aligned, prepared uint8 crops ``(N, H, W, 3)``; skips face detection."""
        out = []
        for i in range(0, len(crops), batch_size):
            logits = np.asarray(self.backend.run(to_batch(crops[i : i + batch_size], self.spec.preprocessing)))
            if not np.all(np.isfinite(logits)):
                bad = int(np.sum(~np.all(np.isfinite(logits), axis=1)))
                raise NonFiniteOutputError(
                    f"{self.runtime} returned NaN/Inf logits for {bad} of {len(logits)} faces "
                    f"({self.spec.name}{', ' + str(self.artifact.path) if self.artifact else ''}): the artifact or "
                    "runtime is broken on this machine; re-export it and run deepfake-sdk verify")
            out.append(softmax_fake(logits))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def _label(score: float, threshold: float) -> str:
    return "fake" if score >= threshold else "real"


class TorchBackend:
    """The full-precision PyTorch reference as a backend."""

    name = "pytorch"

    def __init__(self, model):
        self.model = model.eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()
