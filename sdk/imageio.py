"""Decode any supported input into an RGB PIL image, or fail with a message that names why.

Accepted: a path (str / Path), raw bytes, a PIL image, or an ``H x W x 3`` uint8 RGB array
(``H x W`` greyscale and RGBA are converted). Decoding is bounded by PIL's decompression-bomb
limit, and EXIF orientation is applied so phone photos are upright.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]
MIN_SIDE = 16  # smaller than this cannot hold a recognisable face


def describe(source: ImageInput) -> str:
    """Short name of an input for tables and messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))}>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageInput) -> Image.Image:
    image = _decode(source)
    if min(image.size) < MIN_SIDE:
        w, h = image.size
        raise InvalidImageError(
            f"{describe(source)}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} are "
            "needed to hold a face"
        )
    return image


def _decode(source: ImageInput) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InvalidImageError(f"{path}: no such file")
        if path.is_dir():
            raise InvalidImageError(f"{path}: is a folder, not an image")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise InvalidImageError(
            f"cannot read an image from {type(source).__name__}; pass a path, bytes, a PIL "
            "image or an RGB numpy array"
        )
    if not data:
        raise InvalidImageError(f"{describe(source)}: file is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{describe(source)}: not an image (unrecognised format)") from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{describe(source)}: image is too large to decode safely") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{describe(source)}: corrupt or truncated image ({exc})") from exc
    return ImageOps.exif_transpose(image).convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImageError(
            f"array of shape {array.shape} is not an image; expected H x W x 3 RGB"
        )
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")


def jpeg_roundtrip(image: Image.Image, quality: int = 90) -> Image.Image:
    """Re-encode as JPEG so every crop carries the same compression, whatever its source format.

    The development data has every fake as PNG and most reals as JPEG: without this a model
    learns the file format instead of the face.
    """
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")
