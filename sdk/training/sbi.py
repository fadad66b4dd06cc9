"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): pseudo-fakes from real faces alone.

A real face is blended with a slightly altered copy of itself (colour, sharpness, scale, shift)
inside a soft, randomly deformed face-shaped mask. The result carries only the generic traces
of face swapping (blending boundary, colour and frequency mismatch), not one tool's look, which
is what the single-tool fakes of the development data cannot teach.

Works on aligned crops, where the landmarks sit on GenD's template.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from ..faces.align import template_points


def _face_polygon(size: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """Points around the inner face (brows to chin) from the 5 template landmarks, jittered."""
    le, re, nose, ml, mr = template_points(size, margin)
    eye_mouth = ((ml + mr) / 2 - (le + re) / 2)[1]
    brow = (le + re) / 2 - [0, 0.55 * eye_mouth]
    chin = (ml + mr) / 2 + [0, 0.65 * eye_mouth]
    half_w = (re - le)[0] * rng.uniform(0.85, 1.15)
    centre = (brow + chin) / 2
    half_h = (chin - brow)[1] / 2
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radius = 1 + rng.normal(0, 0.06, size=angles.shape)  # elastic-ish deformation
    xs = centre[0] + half_w * radius * np.cos(angles)
    ys = centre[1] + half_h * radius * np.sin(angles)
    return np.stack([xs, ys], axis=1)


def _mask(size: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in _face_polygon(size, margin, rng)], fill=255)
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(2, 9)))
    mask = np.asarray(canvas, np.float32) / 255.0
    blend = rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    return (mask * blend)[..., None]


def _altered_source(face: Image.Image, rng: np.random.Generator) -> Image.Image:
    src = ImageEnhance.Brightness(face).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Contrast(src).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Color(src).enhance(rng.uniform(0.8, 1.2))
    arr = np.asarray(src, np.float32) * rng.uniform(0.94, 1.06, size=3)  # per-channel tint
    src = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        src = src.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    else:
        src = ImageEnhance.Sharpness(src).enhance(rng.uniform(1.2, 2.0))
    size = face.width
    scale = rng.uniform(0.95, 1.05)
    dx, dy = rng.uniform(-0.03, 0.03, size=2) * size
    coeffs = (1 / scale, 0, (size - size / scale) / 2 - dx, 0, 1 / scale, (size - size / scale) / 2 - dy)
    return src.transform(face.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)


def self_blend(face: np.ndarray, rng: np.random.Generator, margin: float = 1.3,
               return_mask: bool = False):
    """A pseudo-fake from an aligned real crop (uint8 HxWx3); with ``return_mask`` also the
    float blending mask (HxWx1) that was used."""
    target = Image.fromarray(face)
    source = np.asarray(_altered_source(target, rng), np.float32)
    mask = _mask(face.shape[0], margin, rng)
    out = mask * source + (1 - mask) * face.astype(np.float32)
    fake = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return (fake, mask) if return_mask else fake
