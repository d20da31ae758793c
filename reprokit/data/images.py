"""Decoding the dataset's images: per batch, as a DataLoader asks for them (training and validation),
or all at once into one tensor (``load_images``: small sets, tests, the benchmark's reference).

Both decode an image the same way (``_load_one``: convert to the mode, crop to the row's bounding
box, bilinear resize, uint8 -> float32 / 255), so a batch holds the same values however it was loaded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from reprokit.data.dataframe import BBOX_COLUMNS

__all__ = [
    "ImageDataset",
    "ImageTensorDataset",
    "RawPixels",
    "WorkerSeeder",
    "collate_batch",
    "image_loader",
    "load_images",
]


def _load_one(path: Path, size: int, mode: str, box: tuple[int, int, int, int] | None) -> np.ndarray:
    with Image.open(path) as src:
        img = src.convert(mode)
        if box is not None:
            img = img.crop(box)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
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
            x_1, y_1, x_2, y_2 = (int(col[i]) for col in boxes)
            box = (x_1, y_1, x_2, y_2)
        out[i] = _load_one(path, size, mode, box)
    return torch.from_numpy(out).float().div_(255.0)


class ImageDataset(torch.utils.data.Dataset):
    """The rows of a dataframe as (images, labels, indices) batches, decoded when a batch is asked for.

    Holds a path, a label and a bounding box per row, never pixels: the decoded dataset is never
    in memory, only the batches in flight, and DataLoader workers decode them in parallel.
    ``__getitems__`` decodes a whole batch into one tensor (what ``DataLoader`` calls with a batch
    sampler; use ``collate_batch``).
    """

    def __init__(
        self,
        paths: Sequence[Path | str],
        labels: Sequence[int],
        size: int,
        mode: str = "L",
        boxes: np.ndarray | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"labels must have one value per path ({len(self.paths)}); got {len(self.labels)}")
        # [N, 4] (x_1, y_1, x_2, y_2) as PIL crops, -1 in every column where a row has no box.
        if boxes is not None and tuple(boxes.shape) != (len(self.paths), 4):
            raise ValueError(f"boxes must have shape ({len(self.paths)}, 4); got {tuple(boxes.shape)}")
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.int64)
        self.size = size
        self.mode = mode
        self.channels = 1 if mode == "L" else 3

    @classmethod
    def from_frame(cls, df: pd.DataFrame, paths: Sequence[Path], size: int, mode: str = "L") -> ImageDataset:
        """The frame's rows (labels, and bounding boxes where it has the four columns), in order."""
        boxes = None
        if all(c in df.columns for c in BBOX_COLUMNS):
            # PIL crops by (left, upper, right, lower) = (x_1, y_1, x_2, y_2); a row has all four or none.
            cols = [df[c].to_numpy() for c in ("x_1", "y_1", "x_2", "y_2")]
            given = ~pd.isna(cols[0])
            boxes = np.full((len(df), 4), -1, dtype=np.int64)
            for k, col in enumerate(cols):
                boxes[given, k] = [int(v) for v in col[given]]
        return cls(paths, df["label"].to_numpy(), size, mode, boxes)

    def __len__(self) -> int:
        return len(self.paths)

    def _box(self, i: int) -> tuple[int, int, int, int] | None:
        if self.boxes is None or self.boxes[i, 0] < 0:
            return None
        x_1, y_1, x_2, y_2 = (int(v) for v in self.boxes[i])
        return (x_1, y_1, x_2, y_2)

    def decode(self, idxs: Sequence[int]) -> torch.Tensor:
        """[len(idxs), C, size, size] float32 in [0, 1]: the rows' images, in the order given."""
        out = np.empty((len(idxs), self.channels, self.size, self.size), dtype=np.uint8)
        for j, i in enumerate(idxs):
            out[j] = _load_one(Path(self.paths[i]), self.size, self.mode, self._box(int(i)))
        return torch.from_numpy(out).float().div_(255.0)

    def __getitem__(self, idx: int):
        return self.decode([idx])[0], self.labels[idx], idx

    def __getitems__(self, idxs: list[int]):
        index = torch.as_tensor(idxs, dtype=torch.long)
        return [(self.decode(idxs), self.labels[index], index)]


class ImageTensorDataset(torch.utils.data.Dataset):
    """(image, label, index) triples from in-memory tensors; batched indexing in one gather (the
    in-memory counterpart of ``ImageDataset``, e.g. over ``load_images``)."""

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


class WorkerSeeder:
    """``worker_init_fn`` seeding each DataLoader worker's torch, numpy and ``random`` from the one
    seed, the rank and the worker id (so a worker's draws never depend on the global RNG's state).

    ``rank`` may be set until the workers start (reprokit's training sets it once the Trainer knows it).
    """

    def __init__(self, seed: int, rank: int = 0) -> None:
        self.seed = seed
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        state = np.random.SeedSequence([self.seed, self.rank, worker_id]).generate_state(2, dtype=np.uint32)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))
        np.random.seed(int(state[0]))
        random.seed(int(state[1]))


def image_loader(
    dataset: torch.utils.data.Dataset,
    batches: Iterable[list[int]],
    num_workers: int,
    seeder: WorkerSeeder,
    persistent: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader decoding the given batches of indices (a batch sampler, or a list of index lists)
    in ``num_workers`` worker processes (0: in this process), in order."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate_batch,
        num_workers=num_workers,
        persistent_workers=persistent and num_workers > 0,
        worker_init_fn=seeder if num_workers > 0 else None,
    )


class RawPixels:
    """The images as rows of pixels, filled batch by batch, within ``max_bytes`` (float32).

    At full resolution (``images.flatten(1)``) when n x C x size² floats fit; otherwise each image is
    area-averaged down to the largest square side that fits (``side``), so the memory stays bounded
    whatever the number of images. ``filled`` tells which rows have been added.
    """

    def __init__(self, n: int, channels: int, size: int, max_bytes: int) -> None:
        fits = math.isqrt(max(max_bytes, 0) // (4 * channels * max(n, 1)))
        self.side = max(1, min(size, fits))
        self.size = size
        self.matrix = torch.empty(n, channels * self.side * self.side)
        self.filled = torch.zeros(n, dtype=torch.bool)

    def add(self, index: torch.Tensor, images: torch.Tensor) -> None:
        if self.side != images.shape[-1]:
            images = torch.nn.functional.adaptive_avg_pool2d(images, self.side)
        self.matrix[index] = images.flatten(1)
        self.filled[index] = True

    def missing(self) -> list[int]:
        return (~self.filled).nonzero().flatten().tolist()
