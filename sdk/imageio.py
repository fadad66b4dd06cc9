"""Decode any supported input into an RGB PIL image, or fail with a message that names why.

Accepted: a path (str / Path), raw bytes, a PIL image, or an ``H x W x 3`` uint8 RGB array
(``H x W`` greyscale and RGBA are converted). Decoding is bounded: files over
``MAX_FILE_BYTES`` and images over ``MAX_PIXELS`` are refused from the header, before any pixel is
decoded (decompression bombs). EXIF orientation is applied so phone photos are upright. Every
mode becomes 8-bit RGB the way a viewer shows it: 16-bit and 32-bit samples are scaled (not
clipped: a 16-bit greyscale PNG used to turn white and lose its face), alpha is composited over
white, palettes are expanded, CMYK is converted, and an animation contributes its first frame.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})  # what a folder of images is read for
MIN_SIDE = 16  # smaller than this cannot hold a recognisable face
MAX_PIXELS = 120_000_000  # the largest phone sensors; more is refused before decoding
MAX_FILE_BYTES = 256 * 1024 * 1024


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
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InvalidImageError(f"{path}: no such file")
        if path.is_dir():
            raise InvalidImageError(f"{path}: is a folder, not an image")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidImageError(f"{path}: file is {path.stat().st_size / 2**20:.0f} MiB; the limit is "
                                    f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
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
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"{describe(source)}: {len(data) / 2**20:.0f} MiB of data; the limit is "
                                f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidImageError(f"{describe(source)}: image is {width}x{height} pixels, over the "
                                    f"{MAX_PIXELS / 1e6:.0f} MP limit (too large to decode safely)")
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))
    except InvalidImageError:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{describe(source)}: not an image (unrecognised format)") from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{describe(source)}: image is too large to decode safely") from exc
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
            EOFError, MemoryError, struct.error) as exc:  # what Pillow's decoders raise on damaged files
        raise InvalidImageError(f"{describe(source)}: corrupt or truncated image ({type(exc).__name__}: {exc})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB as a viewer shows it (scaled, composited, expanded)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 1.0 if image.mode == "F" and values.size and values.max() <= 1.0 else (
            255.0 if image.mode == "F" or (values.size and values.max() <= 255) else 65535.0)
        grey = np.clip(np.nan_to_num(values) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InvalidImageError(f"array of dtype {getattr(array, 'dtype', '?')} is not an image")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImageError(
            f"array of shape {array.shape} is not an image; expected H x W x 3 RGB"
        )
    if array.size == 0 or array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise InvalidImageError(f"array of shape {array.shape} is empty or over the {MAX_PIXELS / 1e6:.0f} MP limit")
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float64))
        if array.max() <= 1.0:
            array = array * 255.0
        elif array.max() > 255:  # 16-bit samples
            array = array / 257.0
        array = np.clip(array + 0.5, 0, 255).astype(np.uint8)
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
