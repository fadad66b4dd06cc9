"""Regenerate the redistributable sample images (run once; outputs are committed).

Inputs are scikit-image's bundled photos (``skimage/data`` in its wheel): ``astronaut.png``
(NASA, public domain) and ``chelsea.png`` (CC0, Stefan van der Walt).

    python samples/make_samples.py --skimage-data /path/to/skimage/data

Writes into ``samples/``: the real photo, a tight face crop of it, a self-blended fake of the
whole photo and of the crop, a cat (no face); and the packaged calibration face.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_sdk.faces import FacePipeline
from deepfake_sdk.faces.align import similarity_transform, template_points, warp
from deepfake_sdk.paths import package_weights_dir
from deepfake_sdk.training.sbi import self_blend

HERE = Path(__file__).resolve().parent


def paste_back(photo: Image.Image, matrix: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> Image.Image:
    """Warp a blended crop and its mask back into the photo (the inverse of the alignment).

    PIL's affine coefficients map output pixels to input pixels: photo -> crop is ``matrix``.
    """
    coeffs = tuple(matrix.ravel())
    back = Image.fromarray(crop).transform(photo.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    alpha = Image.fromarray((mask[..., 0] * 255).astype(np.uint8)).transform(
        photo.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    return Image.composite(back, photo, alpha)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skimage-data", required=True, type=Path)
    args = ap.parse_args()
    photo = Image.open(args.skimage_data / "astronaut.png").convert("RGB")
    photo.save(HERE / "astronaut.jpg", quality=92)
    face = FacePipeline().faces(photo)[0]
    x1, y1, x2, y2 = face.box
    pad = 0.15 * (x2 - x1)
    photo.crop((int(x1 - pad), int(y1 - pad), int(x2 + pad), int(y2 + pad))).save(HERE / "astronaut_face.jpg", quality=92)

    size = 448  # blend at higher resolution than the model's crop, as a real swap would
    matrix = similarity_transform(face.landmarks, template_points(size))
    crop = np.asarray(warp(photo, matrix, size))
    fake_crop, mask = self_blend(crop, np.random.default_rng(7), return_mask=True)
    fake = paste_back(photo, matrix, fake_crop, mask)
    fake.save(HERE / "astronaut_selfblend.jpg", quality=92)
    fake.crop((int(x1 - pad), int(y1 - pad), int(x2 + pad), int(y2 + pad))).save(HERE / "astronaut_selfblend_face.jpg", quality=92)

    Image.open(args.skimage_data / "chelsea.png").convert("RGB").save(HERE / "cat_no_face.jpg", quality=92)
    face.crop.save(package_weights_dir() / "calibration_face.jpg", quality=95)


if __name__ == "__main__":
    main()
