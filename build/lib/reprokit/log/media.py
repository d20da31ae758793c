"""Turning what a user passes to ``self.log`` into an image or a text, with clear errors."""

from __future__ import annotations

import math
import weakref
from collections import Counter
from typing import Any

import numpy as np
import torch
from PIL import Image

from reprokit.core.errors import LogValueError

__all__ = ["is_image_like", "to_image_hwc", "to_pil", "Occurrences", "LogValueError"]


def is_image_like(value: Any) -> bool:
    """Arrays/tensors with two or more dimensions are images; numbers and 1-element tensors are not."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.ndim >= 2 and math.prod(value.shape) > 1
    return False


def _grid(batch: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> one [C, H', W'] image: a near-square grid with 2-pixel gaps."""
    n, c, h, w = batch.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = 2
    out = np.zeros((c, rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=batch.dtype)
    for i in range(n):
        r, col = divmod(i, cols)
        out[:, r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = batch[i]
    return out


def to_image_hwc(key: str, value: Any) -> np.ndarray:
    """HW, CHW, HWC or NCHW tensor/array -> [H, W, C] uint8 with C in (1, 3, 4).

    Floats must lie in [0, 1]; integers in [0, 255]. Anything else raises :class:`LogValueError`
    naming the key, the shape and the dtype received.
    """
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    where = f"self.log({key!r}, ...): got shape {tuple(arr.shape)}, dtype {arr.dtype}"
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise LogValueError(f"{where}; images must be float in [0, 1] or integer in [0, 255]")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise LogValueError(f"{where}; the image contains NaN or infinite values")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise LogValueError(f"{where}; float images must lie in [0, 1] (got {arr.min():.3g}..{arr.max():.3g})")
        arr = (arr * 255.0 + 0.5).astype(np.uint8)
    else:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise LogValueError(f"{where}; integer images must lie in [0, 255]")
        arr = arr.astype(np.uint8)

    if arr.ndim == 4:
        if arr.shape[1] not in (1, 3, 4):
            raise LogValueError(f"{where}; a batch of images must be NCHW with C in 1, 3, 4")
        chw = _grid(arr)
    elif arr.ndim == 3:
        if arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            chw = arr
        elif arr.shape[-1] in (1, 3, 4):
            chw = arr.transpose(2, 0, 1)
        elif arr.shape[0] in (1, 3, 4):
            chw = arr
        else:
            raise LogValueError(f"{where}; a 3-d image must be CHW or HWC with 1, 3 or 4 channels")
    elif arr.ndim == 2:
        if min(arr.shape) < 2:
            raise LogValueError(f"{where}; not an image (log a scalar as a 1-element tensor or a number)")
        chw = arr[None]
    else:
        raise LogValueError(f"{where}; images must be HW, CHW, HWC or NCHW")
    return np.ascontiguousarray(chw.transpose(1, 2, 0))


def to_pil(image_hwc: np.ndarray) -> Image.Image:
    """A uint8 HWC array (1, 3 or 4 channels, as :func:`to_image_hwc` returns) as a PIL image."""
    channels = image_hwc.shape[-1]
    if channels == 1:
        return Image.fromarray(image_hwc[..., 0], mode="L")
    return Image.fromarray(image_hwc, mode={3: "RGB", 4: "RGBA"}[channels])


class Occurrences:
    """How many media each logger has already received under one (kind, key, step).

    Several images with one key and step (one per validation batch) get file names of their own
    instead of overwriting each other. Weak keys: a finished logger takes its counts with it.
    """

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[Any, Counter] = weakref.WeakKeyDictionary()

    def next(self, logger: Any, kind: str, key: str, step: int) -> int:
        counts = self._seen.setdefault(logger, Counter())
        n = counts[(kind, key, step)]
        counts[(kind, key, step)] += 1
        return n
