"""Face detection, alignment and the face policies on packaged photos."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepfake_sdk.faces import FacePipeline
from deepfake_sdk.faces.align import similarity_transform, template_points
from deepfake_sdk.imageio import load_image


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline()


def test_finds_the_astronaut_with_ordered_landmarks(pipeline, samples):
    faces = pipeline.faces(load_image(samples / "astronaut.jpg"))
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 140 < x1 < 200 and 40 < y1 < 100 and 230 < x2 < 300 and 150 < y2 < 230  # her face
    le, re, nose, ml, mr = faces[0].landmarks
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])
    assert faces[0].crop.size == (224, 224)


def test_aligned_crop_puts_eyes_on_template(pipeline, samples):
    face = pipeline.faces(load_image(samples / "astronaut.jpg"))[0]
    again = pipeline.detect(face.crop)
    assert again, "the aligned crop itself should still contain a face"
    eyes = again[0].landmarks[:2]
    assert np.abs(eyes - template_points(224, 1.3)[:2]).max() < 12  # pixels


def test_tight_face_crop_still_works(pipeline, samples):
    assert pipeline.faces(load_image(samples / "astronaut_face.jpg"))


def test_no_face_returns_empty(pipeline, samples):
    assert pipeline.faces(load_image(samples / "cat_no_face.jpg")) == []


def test_all_faces_policy(pipeline, samples):
    photo = load_image(samples / "astronaut.jpg")
    small = photo.resize((256, 256))
    canvas = Image.new("RGB", (1024, 512), (200, 200, 200))
    canvas.paste(photo, (0, 0))
    canvas.paste(small, (640, 128))
    every = pipeline.faces(canvas, all_faces=True)
    assert len(every) == 2
    assert every[0].box[0] < 512 < every[1].box[0], "largest face first"
    assert len(pipeline.faces(canvas)) == 1


def test_similarity_transform_recovers_known_warp():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)
