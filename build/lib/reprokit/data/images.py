"""Loading the dataset's images into one in-memory tensor (metric-learning sets here are small)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from reprokit.data.dataframe import BBOX_COLUMNS

__all__ = ["load_images", "ImageTensorDataset", "collate_batch"]


def _load_one(path: Path, size: int, mode: str, box: tuple[int, int, int, int] | None) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert(mode)
        if box is not None:
            img = img.crop(box)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_images(df: pd.DataFrame, paths: Sequence[Path], size: int, mode: str = "L") -> torch.Tensor:
    """[N, C, size, size] float32 in [0, 1], cropped to the bounding box where the frame has one."""
    # Columns read once as arrays: per-cell pandas access costs more than decoding a small PNG.
    has_boxes = all(c in df.columns for c in BBOX_COLUMNS)
    # PIL crops by (left, upper, right, lower) = (x_1, y_1, x_2, y_2).
    boxes = [df[c].to_numpy() for c in ("x_1", "y_1", "x_2", "y_2")] if has_boxes else None
    out = np.empty((len(paths), 1 if mode == "L" else 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        box = None
        if boxes is not None and not pd.isna(boxes[0][i]):
            box = tuple(int(col[i]) for col in boxes)
        out[i] = _load_one(path, size, mode, box)
    return torch.from_numpy(out).float().div_(255.0)


class ImageTensorDataset(torch.utils.data.Dataset):
    """(image, label, index) triples from in-memory tensors; batched indexing in one gather."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int):
        return self.images[idx], self.labels[idx], idx

    def __getitems__(self, idxs: list[int]):
        # DataLoader calls this with the whole batch: one tensor gather instead of B lookups.
        index = torch.as_tensor(idxs)
        return [(self.images[index], self.labels[index], index)]


def collate_batch(items):
    return items[0]
