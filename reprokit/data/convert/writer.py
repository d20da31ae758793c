"""The one writer every converter ends in: an OML dataframe, checked, written atomically as ``df.csv``.

Converters hand over plain per-image lists (:class:`Images`); this module turns them into the
OML columns, runs the same checks every stage runs on the exact bytes it is about to publish,
and only then renames the file into place: a converted CSV that exists is one the pipeline accepts
(its images are checked for existence here, for decoding by `reprokit check-data`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reprokit.core.errors import DataFrameError
from reprokit.core.fileio import atomic_path
from reprokit.data.columns import BBOX_COLUMNS
from reprokit.data.convert.source_files import ConvertError, missing_images
from reprokit.data.dataframe import load_dataframe

__all__ = ["Images", "Converted", "class_disjoint_halves", "write_converted", "CSV_NAME"]

CSV_NAME = "df.csv"

Box = tuple[int, int, int, int]  # (x_1, y_1, x_2, y_2): PIL's crop corners, x_2 and y_2 exclusive


@dataclass
class Images:
    """One entry per image, in the dataset's own order. ``query``/``gallery`` matter on validation rows only."""

    labels: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # relative to the source folder, '/'-separated
    train: list[bool] = field(default_factory=list)
    query: list[bool] = field(default_factory=list)
    gallery: list[bool] = field(default_factory=list)
    categories: list[str] | None = None
    boxes: list[Box | None] | None = None
    notes: list[str] = field(default_factory=list)  # what the converter decided, shown to the user

    def add(
        self,
        label: int,
        path: str,
        train: bool,
        query: bool = True,
        gallery: bool = True,
        category: str | None = None,
        box: Box | None = None,
    ) -> None:
        self.labels.append(label)
        self.paths.append(path)
        self.train.append(train)
        self.query.append(query and not train)
        self.gallery.append(gallery and not train)
        if category is not None:
            self.categories = [] if self.categories is None else self.categories
            self.categories.append(category)
        if box is not None or self.boxes is not None:
            self.boxes = [None] * (len(self.labels) - 1) if self.boxes is None else self.boxes
            self.boxes.append(box)


@dataclass(frozen=True)
class Converted:
    """What was written: the CSV, the root its paths are relative to, and the counts a user checks."""

    dataset: str
    csv: Path
    root: Path
    rows: int
    train_rows: int
    train_labels: int
    validation_rows: int
    validation_labels: int
    queries: int
    galleries: int
    categories: int  # 0: no category column
    boxes: int  # rows with a bounding box (0: no box columns)
    notes: tuple[str, ...] = ()


def class_disjoint_halves(labels: list[int]) -> set[int]:
    """The training labels of the CUB/Cars protocol: the first half of the sorted classes (the rest is tested)."""
    classes = sorted(set(labels))
    return set(classes[: len(classes) // 2])


def write_converted(dataset: str, images: Images, src: Path, out: Path) -> Converted:
    """Check ``images`` (files present, OML rules) and write ``out/df.csv`` with paths relative to ``src``."""
    if not images.labels:
        raise ConvertError(f"{dataset}: the lists in {str(src)!r} name no images")
    n_missing, first = missing_images(src, images.paths)
    if n_missing:
        raise ConvertError(
            f"{dataset}: {n_missing:,} of the {len(images.paths):,} images the lists name are not in "
            f"{str(src)!r}, e.g. {first!r}",
            hint="unpack the dataset's image archive into that folder as well (all of it)",
        )
    df, dropped_boxes = _frame(images)
    notes = list(images.notes)
    if dropped_boxes:
        notes.append(
            f"{dropped_boxes:,} bounding boxes that are empty or negative were left out "
            "(those rows use the whole image)"
        )
    csv_path = out / CSV_NAME
    if out.exists() and not out.is_dir():
        raise ConvertError(f"{dataset}: --out {str(out)!r} is a file; it must be a folder (df.csv is written into it)")
    try:
        with atomic_path(csv_path) as tmp:
            df.to_csv(tmp, index=False)
            try:  # the bytes about to be published pass every check the stages run (images: existence, above)
                checked = load_dataframe(tmp, root=src, check_images=False)
            except DataFrameError as exc:
                raise ConvertError(
                    f"{dataset}: the converted dataframe breaks an OML rule: {str(exc).split(': ', 1)[-1]}",
                    hint=exc.hint,
                ) from exc
    except OSError as exc:  # a read-only or full disk: one line, and atomic_path left nothing behind
        raise ConvertError(
            f"{dataset}: cannot write {str(csv_path)!r}: {exc.strerror or exc}",
            hint="pass an --out folder you can write to",
        ) from exc
    return _counts(dataset, checked, csv_path, src, tuple(notes))


def _frame(images: Images) -> tuple[pd.DataFrame, int]:
    split = ["train" if t else "validation" for t in images.train]
    # Train rows leave the flags empty (OML); validation rows hold booleans.
    flag = lambda values: [None if t else bool(v) for t, v in zip(images.train, values)]  # noqa: E731
    df = pd.DataFrame(
        {
            "label": images.labels,
            "path": images.paths,
            "split": split,
            "is_query": flag(images.query),
            "is_gallery": flag(images.gallery),
        }
    )
    if images.categories is not None:
        df["category"] = images.categories
    dropped = 0
    if images.boxes is not None:
        corners: dict[str, list[int | None]] = {c: [] for c in BBOX_COLUMNS}
        for box in images.boxes:
            if box is not None and not _valid(box):
                box, dropped = None, dropped + 1
            x_1, y_1, x_2, y_2 = box if box is not None else (None,) * 4
            for name, value in zip(("x_1", "y_1", "x_2", "y_2"), (x_1, y_1, x_2, y_2)):
                corners[name].append(value)
        for name in BBOX_COLUMNS:
            df[name] = pd.array(corners[name], dtype="Int64")
    return df, dropped


def _valid(box: Box) -> bool:
    x_1, y_1, x_2, y_2 = box
    return 0 <= x_1 < x_2 and 0 <= y_1 < y_2


def _counts(dataset: str, df: pd.DataFrame, csv_path: Path, src: Path, notes: tuple[str, ...]) -> Converted:
    train, val = df[df["split"] == "train"], df[df["split"] == "validation"]
    has_boxes = all(c in df.columns for c in BBOX_COLUMNS)
    return Converted(
        dataset=dataset,
        csv=csv_path,
        root=Path(os.path.abspath(src)),
        rows=len(df),
        train_rows=len(train),
        train_labels=train["label"].nunique(),
        validation_rows=len(val),
        validation_labels=val["label"].nunique(),
        queries=int(val["is_query"].sum()),
        galleries=int(val["is_gallery"].sum()),
        categories=df["category"].nunique() if "category" in df.columns else 0,
        boxes=int(df["x_1"].notna().sum()) if has_boxes else 0,
        notes=notes,
    )
