"""Bad input gets a clear error that names the problem."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_sdk.errors import InvalidImageError
from deepfake_sdk.imageio import load_image


def test_corrupt_jpeg(tmp_path, samples):
    data = (samples / "astronaut.jpg").read_bytes()
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(data[:600])
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        load_image(bad)


def test_not_an_image(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(text)


def test_one_pixel_image():
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    with pytest.raises(InvalidImageError, match="1x1 pixels"):
        load_image(buf.getvalue())


@pytest.mark.parametrize("source, message", [
    ("/definitely/missing.png", "no such file"),
    (b"", "empty"),
    (np.zeros((4, 4, 7)), "not an image"),
    (3.14, "cannot read an image from float"),
])
def test_other_bad_inputs(source, message):
    with pytest.raises(InvalidImageError, match=message):
        load_image(source)


def test_accepts_every_input_kind(samples):
    path = samples / "astronaut.jpg"
    expected = load_image(path)
    for source in (str(path), path.read_bytes(), Image.open(path), np.asarray(expected)):
        assert load_image(source).size == expected.size
