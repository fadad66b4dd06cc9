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


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_sixteen_bit_greyscale_finds_the_face_like_eight_bit(samples):
    """Once clipped to white (no_face); now scaled like a viewer shows it."""
    import deepfake_sdk

    grey = Image.open(samples / "astronaut.jpg").convert("L")
    wide = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    data = _encode(wide, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert np.abs(np.asarray(load_image(data), float) - np.asarray(grey.convert("RGB"), float)).max() <= 1
    det = deepfake_sdk.load("gend-fp32")
    a, b = det.predict(data), det.predict(_encode(grey, "PNG"))
    assert a.label != "no_face" and abs(a.score - b.score) < 0.02


@pytest.mark.parametrize("mode, fmt, kw", [("RGBA", "PNG", {}), ("LA", "PNG", {}), ("P", "PNG", {}), ("CMYK", "JPEG", {}),
                                           ("P", "GIF", {"save_all": True}), ("F", "TIFF", {}), ("1", "PNG", {})])
def test_every_mode_becomes_eight_bit_rgb(mode, fmt, kw, samples):
    base = Image.open(samples / "astronaut_face.jpg")
    if fmt == "GIF":
        kw = {**kw, "append_images": [base.convert("P").rotate(30)]}
    img = base.convert(mode) if mode != "F" else Image.fromarray(np.asarray(base.convert("L"), np.float32) / 255.0)
    out = load_image(_encode(img, fmt, **kw))
    assert out.mode == "RGB" and out.size == base.size and 20 < np.asarray(out).mean() < 235


def test_transparent_pixels_are_composited_over_white():
    rgba = Image.new("RGBA", (32, 32), (10, 20, 30, 0))
    assert np.asarray(load_image(_encode(rgba, "PNG"))).min() == 255


def test_declared_size_over_the_limit_is_refused_before_decoding():
    from deepfake_sdk import imageio

    header = _encode(Image.new("L", (20_000, 7_000)), "PNG")  # 140 MP of zeros compresses to KBs
    assert len(header) < 1_000_000
    with pytest.raises(InvalidImageError, match="over the 120 MP limit"):
        load_image(header)
    assert imageio.MAX_PIXELS == 120_000_000
