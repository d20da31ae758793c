"""Checking a dataset dataframe in the open-metric-learning (OML) format before any compute.

Required columns ``label`` (int), ``path``, ``split`` (train/validation), ``is_query``,
``is_gallery``; optional ``category``, ``sequence``, box ``x_1, x_2, y_1, y_2``. Train rows leave
the flags empty (a boolean there is accepted and ignored); validation rows hold booleans
(True/False/true/false/1/0 or real bools) and are a query, a gallery item, or both; every query
label appears in the gallery.

Every failure raises :class:`~reprokit.core.errors.DataFrameError` with a one-line message naming the
column, the first offending rows (5 at most, then "and N more") with their values, and a hint
with the fix. The most fundamental and cheapest checks run first, so the first error is the root
cause: CSV syntax, columns, rows, labels, splits, paths, query/gallery flags, query labels in the
gallery, bounding boxes, categories, duplicated rows, paths leaving the root, image files.
:func:`find_dataframe_problems` runs the same checks and returns every problem instead (what
``reprokit check-data`` prints), skipping a check whose input column is already broken.

Row numbers: **row N is the N-th data row, the first row after the header being row 1**. Blank
(or whitespace-only) lines are skipped and not counted; a message about a CSV also gives the
file lines of the rows it quotes ("row 71 = 'x' (line 72 of the CSV file)"), which differ from
N+1 after blank lines or multi-line quoted fields. In a DataFrame, row N is the N-th row
whatever its index.

``label_map="auto"`` (``data.label_map: auto``) accepts labels that are not integers (names,
SKUs): each distinct label text becomes an integer, in sorted order (see ``reprokit.data.labels``).

Definitions worth knowing:
- "missing" is an empty cell (NaN/None in a DataFrame); for ``label``, ``split``, the flags and
  the box also the usual NA spellings (``nan``, ``NA``, ``null``, ``None`` ...). ``path`` and
  ``category`` are strings taken literally (a category may be called ``NA``).
- An integer is written as one (``3``, ``-2``) or as an integral number (``3.0``, which pandas
  writes for integer columns holding missing values) within int64.
- A duplicated row is one whose every column is identical, after normalisation, to an earlier row.
- A path leaves the dataset root when it is absolute or when ``..`` takes it above the root,
  judged on the text (a symlink inside the root is followed, not judged).
- An image file is accepted when Pillow opens and fully decodes it and can convert it to both
  ``L`` and ``RGB`` (what :mod:`reprokit.data.images` does with it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from reprokit.core.errors import DataFrameError
from reprokit.data.cells import INVALID as _INVALID
from reprokit.data.cells import is_missing as _missing
from reprokit.data.cells import show as _show
from reprokit.data.cells import to_bool as _to_bool
from reprokit.data.cells import to_int as _to_int
from reprokit.data.columns import BBOX_COLUMNS
from reprokit.data.csv_reader import FORMAT_HINT as _FORMAT_HINT
from reprokit.data.csv_reader import one_line as _one_line
from reprokit.data.csv_reader import read_csv as _read_csv
from reprokit.data.labels import LABEL_MAP_KEY, check_labels
from reprokit.data.problems import Problems

__all__ = [
    "load_dataframe",
    "check_dataframe",
    "find_dataframe_problems",
    "resolve_image_paths",
    "REQUIRED_COLUMNS",
    "BBOX_COLUMNS",
    "SPLITS",
    "LABEL_MAP_KEY",
]

REQUIRED_COLUMNS = ("label", "path", "split", "is_query", "is_gallery")
SPLITS = ("train", "validation")


# --- reading -----------------------------------------------------------------------------------


def load_dataframe(
    csv_path: str | Path,
    root: str | Path | None = None,
    allow_outside_root: bool = False,
    check_images: bool = True,
    label_map: str | None = None,
) -> pd.DataFrame:
    """Read an OML-format CSV, run every check of :func:`check_dataframe`, return the normalised frame.

    ``root`` is the folder image paths are relative to (``None``: the CSV's folder). Every cell
    is read as text so that values are judged as written; errors are prefixed with the CSV path.
    """
    csv_path = Path(csv_path)
    df, lines = _read_csv(csv_path)  # its errors name the file already
    root = csv_path.parent if root is None else Path(root)
    try:
        return _check(df, root, allow_outside_root, check_images, label_map, Problems(lines=lines))
    except DataFrameError as exc:
        raise DataFrameError(f"{csv_path}: {exc}", hint=exc.hint) from exc


def find_dataframe_problems(
    csv_path: str | Path,
    root: str | Path | None = None,
    allow_outside_root: bool = False,
    check_images: bool = True,
    label_map: str | None = None,
) -> tuple[pd.DataFrame | None, list[DataFrameError]]:
    """Every problem of the CSV (each prefixed with its path), and the normalised frame when there is none."""
    csv_path = Path(csv_path)
    root = csv_path.parent if root is None else Path(root)
    try:
        df, lines = _read_csv(csv_path)
    except DataFrameError as exc:  # the file cannot be read as a table: nothing else to check
        return None, [exc]
    rep = Problems(collect=True, lines=lines)
    try:
        out = _check(df, root, allow_outside_root, check_images, label_map, rep)
    except Problems.Stop:
        out = None
    problems = [DataFrameError(f"{csv_path}: {e}", hint=e.hint) for e in rep.found]
    return (out if not problems else None), problems


# --- checking ----------------------------------------------------------------------------------


def check_dataframe(
    df: pd.DataFrame,
    root: str | Path,
    allow_outside_root: bool = False,
    check_images: bool = True,
    label_map: str | None = None,
) -> pd.DataFrame:
    """Check an OML dataframe (see the module docstring) and return a normalised copy.

    Normalised: ``label`` int64; ``split`` str (``train``/``validation``); ``is_query`` and
    ``is_gallery`` bool (False on train rows); ``path`` and ``category`` str; the box columns
    nullable ``Int64`` (missing on rows without a box). Other columns are kept as they are,
    row order unchanged, index 0..n-1. ``check_images=False`` skips opening the image files
    (the other checks, paths leaving the root included, still run). With ``label_map="auto"``
    and labels that are not all integers, ``out.attrs[LABEL_MAP_KEY]`` holds ``{text: integer}``.
    """
    return _check(df, root, allow_outside_root, check_images, label_map, Problems())


def _check(
    df: pd.DataFrame,
    root: str | Path,
    allow_outside_root: bool,
    check_images: bool,
    label_map: str | None,
    rep: Problems,
) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"check_dataframe expects a pandas DataFrame; got {type(df).__name__}")
    columns = [str(c) for c in df.columns]
    dup_cols = sorted({c for c in columns if columns.count(c) > 1})
    if dup_cols:
        rep.stop(DataFrameError(f"duplicated column names: {', '.join(dup_cols)}", hint="give every column one name"))
    df = df.set_axis(columns, axis=1).reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        msg = f"missing required column(s) {', '.join(missing)}; found columns: {', '.join(map(repr, columns))}"
        rep.stop(DataFrameError(msg, hint=f"{_FORMAT_HINT}; check the header's spelling"))
    if len(df) == 0:
        rep.stop(DataFrameError("no data rows (only a header)", hint="add one row per image"))

    # Plain lists, not pandas cells: per-cell pandas access costs far more than the checks.
    raw = {c: df[c].tolist() for c in columns if c in REQUIRED_COLUMNS + BBOX_COLUMNS + ("category",)}
    labels, mapping = check_labels(raw["label"], rep, label_map)
    norm: dict[str, Any] = {"label": labels, "split": _check_split(raw["split"], rep)}
    norm["path"] = paths = _check_paths(raw["path"], rep)
    is_val = np.asarray(norm["split"]) == "validation"
    norm["is_query"], norm["is_gallery"] = _check_flags(raw, is_val, rep)
    if rep.ok("label", "split", "is_query", "is_gallery"):  # judged on broken columns, it would mislead
        _check_queries(norm["label"], is_val, norm["is_query"], norm["is_gallery"], rep)
    norm.update(_check_bbox(raw, rep))
    if "category" in raw:
        norm["category"] = _check_category(raw["category"], rep)
    # A broken column is compared as written (its normalised values are placeholders).
    values = {c: raw[c] if c in rep.broken else norm[c] if c in norm else df[c].tolist() for c in columns}
    out = pd.DataFrame({c: norm[c] if c in norm else df[c] for c in columns})
    if mapping is not None:
        out.attrs[LABEL_MAP_KEY] = mapping
    _check_duplicates(out, [values[c] for c in columns], rep)
    if rep.ok("path"):
        _check_inside_root(paths, Path(root), allow_outside_root, rep)
        if check_images:
            _check_images(paths, resolve_image_paths(out, root), Path(root), rep)
    return out


def _check_split(values: list, rep: Problems) -> list[str]:
    split = [v.strip() if isinstance(v, str) else v for v in values]
    bad = [i for i, s in enumerate(split) if s not in SPLITS]
    if bad:
        rep.fail(
            "'split'",
            "with a value other than 'train' or 'validation'",
            bad,
            [_show(values[i]) for i in bad],
            hint="split must be exactly 'train' or 'validation' (lower case)",
            broken="split",
        )
    for name in SPLITS:
        if name not in split:
            counts = {s: split.count(s) for s in SPLITS}
            rep.add(
                DataFrameError(
                    f"column 'split': the {name} split is empty "
                    f"({counts['train']} train and {counts['validation']} validation rows)",
                    hint="reprokit trains on the train rows and scores retrieval on the validation rows: both need rows",
                ),
                broken="split",
            )
    return split


def _check_paths(values: list, rep: Problems) -> list[str]:
    def ok(v: Any) -> bool:
        return isinstance(v, (str, os.PathLike)) and isinstance(os.fspath(v), str) and not _missing(v, False)

    bad = [i for i, v in enumerate(values) if not ok(v)]
    if bad:
        rep.fail(
            "'path'",
            "without an image path",
            bad,
            [_show(values[i]) for i in bad],
            hint="every row needs the path of its image, relative to the dataset root",
            broken="path",
        )
    return [os.fspath(v) if ok(v) else "" for v in values]


def _check_flags(raw: dict[str, list], is_val: np.ndarray, rep: Problems) -> tuple[np.ndarray, np.ndarray]:
    flags = []
    for col in ("is_query", "is_gallery"):
        values = raw[col]
        parsed = [None if _missing(v) else _to_bool(v) for v in values]
        bad = [i for i, x in enumerate(parsed) if is_val[i] and (x is None or x is _INVALID)]
        if bad:
            rep.fail(
                f"'{col}'",
                "in the validation split without a boolean value",
                bad,
                [_show(values[i]) for i in bad],
                hint=f"validation rows need {col} True or False (accepted: True, False, true, false, 1, 0)",
                broken=col,
            )
        bad = [i for i, x in enumerate(parsed) if not is_val[i] and x is _INVALID]
        if bad:
            rep.fail(
                f"'{col}'",
                "in the train split with a value neither empty nor boolean",
                bad,
                [_show(values[i]) for i in bad],
                hint=f"leave {col} empty on train rows (OML ignores it there)",
                broken=col,
            )
        flags.append(np.array([x is True if is_val[i] else False for i, x in enumerate(parsed)], dtype=bool))
    is_query, is_gallery = flags
    if rep.ok("is_query", "is_gallery"):
        bad = np.flatnonzero(is_val & ~is_query & ~is_gallery).tolist()
        if bad:
            rep.fail(
                "columns 'is_query'/'is_gallery'",
                "in the validation split that are neither a query nor a gallery item",
                bad,
                [f"({_show(raw['is_query'][i])}, {_show(raw['is_gallery'][i])})" for i in bad],
                hint="set is_query and/or is_gallery to True on those rows, or remove them",
                broken="is_query",
            )
    return is_query, is_gallery


def _check_queries(
    labels: np.ndarray, is_val: np.ndarray, is_query: np.ndarray, is_gallery: np.ndarray, rep: Problems
) -> None:
    if not is_query.any():
        rep.add(
            DataFrameError(
                f"column 'is_query': none of the {int(is_val.sum())} validation rows is a query",
                hint="set is_query to True on the validation rows to search with",
            )
        )
        return
    gallery_labels = set(labels[is_gallery].tolist())
    bad = [i for i in np.flatnonzero(is_query).tolist() if int(labels[i]) not in gallery_labels]
    if bad:
        rep.fail(
            "'label'",
            "that are queries whose label no gallery row (is_gallery True) has",
            bad,
            [str(int(labels[i])) for i in bad],
            hint="give each query label at least one validation row with is_gallery True, or drop those queries",
        )


def _check_bbox(raw: dict[str, list], rep: Problems) -> dict[str, Any]:
    present = [c for c in BBOX_COLUMNS if c in raw]
    if not present:
        return {}
    if len(present) < len(BBOX_COLUMNS):
        absent = [c for c in BBOX_COLUMNS if c not in present]
        msg = f"bounding-box columns incomplete: found {', '.join(present)} but not {', '.join(absent)}"
        rep.add(DataFrameError(msg, hint="give all four of x_1, x_2, y_1, y_2 or none of them"), broken="x_1")
        return {}
    boxes: dict[str, list[Any]] = {c: [None if _missing(v) else _to_int(v) for v in raw[c]] for c in BBOX_COLUMNS}
    for c in BBOX_COLUMNS:
        bad = [i for i, x in enumerate(boxes[c]) if x is _INVALID]
        if bad:
            rep.fail(
                f"'{c}'",
                "with a non-integer value",
                bad,
                [_show(raw[c][i]) for i in bad],
                hint="bounding-box corners are integer pixel coordinates",
                broken=c,
            )
            boxes[c] = [None if x is _INVALID else x for x in boxes[c]]  # the later checks judge the rest
    n = len(raw["x_1"])
    # Given = written (a non-integer corner was reported above; it still counts as given here).
    given = [[not _missing(raw[c][i]) for c in BBOX_COLUMNS] for i in range(n)]
    bad = [i for i in range(n) if any(given[i]) and not all(given[i])]
    if bad:
        rep.fail(
            "columns 'x_1'/'x_2'/'y_1'/'y_2'",
            "with a partial bounding box",
            bad,
            ["(" + ", ".join(_show(raw[c][i]) for c in BBOX_COLUMNS) + ")" for i in bad],
            hint="a row gives all four of x_1, x_2, y_1, y_2 or leaves all four empty",
            broken="x_1",
        )
    for c in BBOX_COLUMNS:
        bad = [i for i, x in enumerate(boxes[c]) if x is not None and x < 0]
        if bad:
            rep.fail(
                f"'{c}'",
                "with a negative value",
                bad,
                [str(boxes[c][i]) for i in bad],
                hint="bounding-box corners are pixel coordinates >= 0",
                broken=c,
            )
    for lo, hi in (("x_1", "x_2"), ("y_1", "y_2")):
        bad = [
            i
            for i in range(n)
            if boxes[lo][i] is not None and boxes[hi][i] is not None and boxes[lo][i] >= boxes[hi][i]
        ]
        if bad:
            shown = [f"({boxes[lo][i]}, {boxes[hi][i]})" for i in bad]
            rep.fail(
                f"columns '{lo}'/'{hi}'",
                f"with {lo} >= {hi}",
                bad,
                shown,
                hint=f"{lo} is the left/top edge and must be smaller than {hi}",
                broken=lo,
            )
    return {c: pd.array([pd.NA if x is None else x for x in boxes[c]], dtype="Int64") for c in BBOX_COLUMNS}


def _check_category(values: list, rep: Problems) -> list[str]:
    bad = [i for i, v in enumerate(values) if _missing(v, na_tokens=False)]
    if bad:
        rep.fail(
            "'category'",
            "without a category",
            bad,
            ["(empty)"] * len(bad),
            hint="fill in the category of those rows, or drop the category column",
            broken="category",
        )
    return [v if isinstance(v, str) else str(v.item() if isinstance(v, np.generic) else v) for v in values]


def _check_duplicates(out: pd.DataFrame, values: list[Any], rep: Problems) -> None:
    # Compared as text after normalisation: "1" and "1.0" are the same label, and cells of extra
    # columns (possibly unhashable objects in a DataFrame) still compare.
    keys = list(zip(*([str(v) for v in col] for col in values)))
    first: dict[tuple, int] = {}
    dup = [i for i, key in enumerate(keys) if first.setdefault(key, i) != i]
    if dup:
        path, label, split = (out[c].tolist() for c in ("path", "label", "split"))
        shown = [f"row {first[keys[i]] + 1} (path {_show(path[i])}, label {label[i]}, split {split[i]!r})" for i in dup]
        rep.fail(
            "duplicated rows",
            "repeating an earlier row (every column identical)",
            dup,
            shown,
            hint="remove the repeated rows: a repeated image counts twice in training and in the metrics",
        )


def _leaves_root(path: str) -> bool:
    if os.path.isabs(path):
        return True
    norm = os.path.normpath(path)
    return norm == os.pardir or norm.startswith(os.pardir + os.sep)


def _check_inside_root(paths: list[str], root: Path, allow_outside_root: bool, rep: Problems) -> None:
    if allow_outside_root:
        return
    bad = [i for i, p in enumerate(paths) if _leaves_root(p)]
    if bad:
        rep.fail(
            "'path'",
            f"with a path leaving the dataset root {str(root.absolute())!r} (absolute or ../)",
            bad,
            [_show(paths[i]) for i in bad],
            hint="write paths relative to the dataset root (data.root, default: the CSV's folder), "
            "or set data.allow_outside_root: true to allow them",
        )


def _image_problem(path: Path) -> str | None:
    """None if Pillow fully decodes ``path`` and converts it to L and RGB; else what is wrong."""
    try:
        if not path.is_file():
            return "not a file" if path.exists() else "missing"
        with Image.open(path) as img:
            img.load()  # decodes all pixel data: open() alone reads only the header
            if img.mode not in ("L", "RGB"):
                img.convert("L")
                img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises, the loader would fail the same way
        text = _one_line(str(exc).replace(repr(str(path)), "").replace(str(path), ""))
        return f"unreadable: {type(exc).__name__}" + (f": {text[:80]}" if text else "")
    return None


def _check_images(paths: list[str], resolved: list[Path], root: Path, rep: Problems) -> None:
    seen: dict[Path, str | None] = {}
    problems = []
    for i, p in enumerate(resolved):
        if p not in seen:
            seen[p] = _image_problem(p)
        if seen[p] is not None:
            problems.append((i, f"{_show(paths[i])} ({seen[p]})"))
    if problems:
        rep.fail(
            "'path'",
            f"(of {len(paths)}) with a missing or unreadable image file (root {str(root.absolute())!r})",
            [i for i, _ in problems],
            [s for _, s in problems],
            hint="fix or remove those rows; paths are relative to the dataset root "
            "(data.root, default: the CSV's folder)",
        )


def resolve_image_paths(df: pd.DataFrame, root: str | Path) -> list[Path]:
    """The absolute path of every row's image: ``root / path`` (an absolute ``path`` is kept).

    Not normalised (``..`` stays in), so the file checked is exactly the file later opened.
    """
    base = Path(root).absolute()
    return [base / os.fspath(p) for p in df["path"].tolist()]
