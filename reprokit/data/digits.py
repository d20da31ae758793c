"""Distorted handwritten digits: a small but real retrieval task built from scikit-learn's data.

Each of the 1,797 8x8 images of ``sklearn.datasets.load_digits`` becomes its own label with
``views`` randomly distorted views (rotation, scaling, shift, Gaussian noise). ``category`` is
the digit. Labels are split into disjoint train and validation sets; every validation view is
both a query and a gallery item, so a query must find the other views of the *same source
image* among many images of the same digit. Raw pixels do badly on it (see README), a trained
embedding clearly better. Everything is a function of the seed: same seed, same bytes.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from reprokit.core.config import DigitsConfig
from reprokit.core.fileio import replace_dir, write_text

__all__ = ["generate_digits", "distort"]

_UPSCALED = 24  # the 8x8 digit is upscaled to this before distortion, then padded


def _source_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships its data inside the package

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # [N, 8, 8] in [0, 1]
    return images, digits.target.astype(np.int64)


def distort(image: np.ndarray, cfg: DigitsConfig, rng: np.random.Generator) -> np.ndarray:
    """One random view of an 8x8 image in [0, 1] -> ``cfg.image_size`` square uint8 image."""
    size = cfg.image_size
    base = Image.fromarray((image * 255).astype(np.uint8)).resize((_UPSCALED, _UPSCALED), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    offset = (size - _UPSCALED) // 2
    canvas.paste(base, (offset, offset))

    # abs(): -0.0 passes the config's ≥ 0 checks, and numpy refuses a range or scale of negative sign.
    rotation, scaling, shift, noise = (abs(v) for v in (cfg.rotation_deg, cfg.scale, cfg.shift, cfg.noise))
    angle = math.radians(rng.uniform(-rotation, rotation))
    scale = 1.0 + rng.uniform(-scaling, scaling)
    dx, dy = rng.uniform(-shift, shift, size=2) * size
    # PIL's affine transform maps output -> input coordinates, so invert rotation+scale
    # about the centre, then apply the shift.
    c = size / 2.0
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    a, b = cos, sin
    d, e = -sin, cos
    cx = c - a * (c + dx) - b * (c + dy)
    cy = c - d * (c + dx) - e * (c + dy)
    warped = canvas.transform(
        (size, size), Image.Transform.AFFINE, (a, b, cx, d, e, cy), resample=Image.Resampling.BILINEAR
    )

    pixels = np.asarray(warped, dtype=np.float32) / 255.0
    pixels = pixels + rng.normal(0.0, noise, size=pixels.shape).astype(np.float32)
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def generate_digits(cfg: DigitsConfig, seed: int, out_dir: str | Path) -> Path:
    """Write ``out_dir/images/*.png`` and ``out_dir/df.csv`` (OML format); return the CSV path."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    images, digits = _source_images()
    if cfg.n_source is not None:
        keep = np.sort(rng.choice(len(images), size=cfg.n_source, replace=False))
        images, digits = images[keep], digits[keep]
    n = len(images)

    order = rng.permutation(n)
    _, n_val = cfg.split_sizes()  # the schema's rule, the one its checks (and the tuning split's) count with
    val_labels = set(order[:n_val].tolist())

    # Thousands of small files: write them into a staging folder and swap it in whole
    # (one rename) rather than fsync+rename each file.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    (staging / "images").mkdir()
    rows = []
    for label in range(n):
        split = "validation" if label in val_labels else "train"
        for view in range(cfg.views):
            rel = f"images/{label:04d}_{view}.png"
            pixels = distort(images[label], cfg, rng)
            Image.fromarray(pixels, mode="L").save(staging / rel, format="PNG")
            is_val = split == "validation"
            rows.append(
                {
                    "label": label,
                    "path": rel,
                    "split": split,
                    "is_query": True if is_val else None,
                    "is_gallery": True if is_val else None,
                    "category": int(digits[label]),
                }
            )
    df = pd.DataFrame(rows, columns=["label", "path", "split", "is_query", "is_gallery", "category"])
    try:
        write_text(staging / "df.csv", df.to_csv(index=False))
        replace_dir(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir / "df.csv"
