"""The report's per-query table: every query's metrics, retrieved items, distances and ground
truth as JSON for the page's script, and the thumbnails it shows as a few inline sprite sheets.

Item indices in ``per_query.tsv`` are rows of the validation split (the dataframe's
``split == validation`` rows in order); their images come from the dataframe + ``data.root``.
Thumbnails are packed into JPEG sheets (one ``data:`` URI per 1,024 images): one image per item
would cost a header each, several times the pixels of a 32 px digit. The pixels are capped
(:data:`PIXEL_BUDGET`) so the page stays a few MB: past it thumbnails shrink, then only the
items of the worst queries get one.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from reprokit.core.errors import ReportError
from reprokit.core.metric_names import EXTRA_METRICS
from reprokit.data.dataframe import BBOX_COLUMNS

__all__ = ["QueryTable", "build_query_table", "metric_columns", "query_records", "PIXEL_BUDGET", "QUERY_FIELDS"]

MAX_CELL, MIN_CELL = 64, 24  # thumbnail side in pixels (never upscaled beyond the image's own size)
PIXEL_BUDGET = 6_000_000  # thumbnail pixels in the page: ~1.5-3 MB of JPEG
SHEET_COLUMNS, SHEET_ROWS = 32, 32
GROUND_TRUTH_SHOWN = 8  # per query; the count of the rest is shown
JPEG_QUALITY = 80  # the digits' noise is texture anyway; 90 costs a third more bytes
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class QueryTable:
    payload: dict[str, Any]  # JSON for the page's script
    sheets: list[str]  # data: URIs of the thumbnail sheets
    cell: int  # thumbnail side in each sheet
    n_thumbnails: int
    n_items: int


def metric_columns(pq: pd.DataFrame) -> list[str]:
    """The per-query metrics, in the table's order (the same rule the worst-queries figure uses)."""
    return [c for c in pq.columns if "@" in c or c in EXTRA_METRICS]


# One array per query, in this order (names once, not per row: a third of the JSON's size).
QUERY_FIELDS = ("item", "label", "category", "n_gt", "metrics", "failed_at_1", "retrieved", "distances", "truth")


def _number(x: Any, digits: int = 6) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _ground_truth(pq: pd.DataFrame, val_df: pd.DataFrame, limit: int) -> list[list[int]]:
    """Per query: the first ``limit`` gallery items it should find (same label; not itself nor its
    own sequence). How many there are in all is the table's ``n_gt``; a label of 10,000 items is
    never listed whole per query."""
    labels = val_df["label"].to_numpy()
    gallery = val_df["is_gallery"].to_numpy(dtype=bool)
    seq = val_df["sequence"].astype("string").fillna("").to_numpy() if "sequence" in val_df.columns else None
    by_label: dict[int, list[int]] = {}
    for idx in np.flatnonzero(gallery):
        by_label.setdefault(int(labels[idx]), []).append(int(idx))
    out = []
    for item, label in zip(pq["item"].tolist(), pq["label"].tolist()):
        gt: list[int] = []
        for i in by_label.get(int(label), ()):
            if i != item and (seq is None or seq[i] != seq[item]):
                gt.append(i)
                if len(gt) == limit:
                    break
        out.append(gt)
    return out


def _failed_at_1(pq: pd.DataFrame, labels: np.ndarray) -> list[bool | None]:
    """Whether the nearest item is not relevant (None for a query without ground truth)."""
    if "cmc@1" in pq.columns:
        return [None if math.isnan(v) else v < 0.5 for v in pq["cmc@1"].astype(float)]
    out: list[bool | None] = []
    for label, retrieved, n_gt in zip(pq["label"], pq["retrieved"], pq["n_gt"]):
        out.append(None if n_gt == 0 else not retrieved or int(labels[retrieved[0]]) != int(label))
    return out


def _priority(pq: pd.DataFrame, gt: list[list[int]], worst_metric: str | None) -> list[int]:
    """Items in the order they get a thumbnail: the worst queries' own, retrieved and truth first."""
    order = list(range(len(pq)))
    if worst_metric in pq.columns:
        keys = pq[worst_metric].astype(float).fillna(np.inf).to_numpy()
        order = sorted(order, key=lambda r: (keys[r], int(pq["item"].iat[r])))
    seen: dict[int, None] = {}
    for r in order:
        for i in (int(pq["item"].iat[r]), *pq["retrieved"].iat[r], *gt[r]):
            seen.setdefault(int(i), None)
    return list(seen)


def _open(path: Path, box: tuple[int, int, int, int] | None) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.crop(box) if box else img.copy()
    except OSError as exc:
        raise ReportError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def _bbox(val_df: pd.DataFrame) -> list[tuple[int, int, int, int] | None]:
    if not all(c in val_df.columns for c in BBOX_COLUMNS):
        return [None] * len(val_df)
    rows = val_df[list(BBOX_COLUMNS)].to_numpy()
    return [None if pd.isna(r).any() else (int(r[0]), int(r[2]), int(r[1]), int(r[3])) for r in rows]


def _sheets(images: list[Image.Image], cell: int) -> list[str]:
    gray = all(img.mode in GRAY_MODES for img in images)
    mode = "L" if gray else "RGB"
    per_sheet = SHEET_COLUMNS * SHEET_ROWS
    out = []
    for start in range(0, len(images), per_sheet):
        chunk = images[start : start + per_sheet]
        rows = -(-len(chunk) // SHEET_COLUMNS)
        sheet = Image.new(mode, (SHEET_COLUMNS * cell, rows * cell), "white")
        for n, img in enumerate(chunk):
            tile = img.convert(mode)
            tile.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            x = (n % SHEET_COLUMNS) * cell + (cell - tile.width) // 2
            y = (n // SHEET_COLUMNS) * cell + (cell - tile.height) // 2
            sheet.paste(tile, (x, y))
        buf = io.BytesIO()
        sheet.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def _thumbnails(priority: list[int], paths: list[Path], boxes: list) -> tuple[dict[int, int], list[str], int]:
    """(item -> thumbnail slot, sheets, cell side) for as many items of ``priority`` as the budget allows."""
    if not priority:
        return {}, [], MIN_CELL
    first = _open(paths[priority[0]], boxes[priority[0]])
    cell = max(1, min(MAX_CELL, max(first.size)))
    if len(priority) * cell * cell > PIXEL_BUDGET:
        cell = min(cell, max(MIN_CELL, math.isqrt(PIXEL_BUDGET // len(priority))))
    keep = priority[: PIXEL_BUDGET // (cell * cell)]
    images = []
    for item in keep:
        img = _open(paths[item], boxes[item])
        img.thumbnail((cell, cell), Image.Resampling.LANCZOS)  # at once: never hold full-size images
        images.append(img)
    return {item: slot for slot, item in enumerate(keep)}, _sheets(images, cell), cell


def query_records(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's queries as one dict per query (what the page's script rebuilds)."""
    return [dict(zip(payload["query_fields"], row)) for row in payload["queries"]]


def build_query_table(
    pq: pd.DataFrame, val_df: pd.DataFrame, val_paths: list[Path], worst_metric: str | None
) -> QueryTable:
    """The table's JSON and thumbnails from ``per_query.tsv`` (as ``read_per_query`` gives it)."""
    n_items = len(val_df)
    referenced = [int(i) for i in pq["item"]] + [int(i) for r in pq["retrieved"] for i in r]
    bad = [i for i in referenced if not 0 <= i < n_items]
    if bad:
        raise ReportError(
            f"per_query.tsv: item {bad[0]} is not a row of the validation split ({n_items} rows)",
            hint="the dataframe changed after validate ran: re-run it (dvc repro)",
        )
    labels = val_df["label"].to_numpy()
    metrics = metric_columns(pq)
    gt = _ground_truth(pq, val_df, GROUND_TRUTH_SHOWN)
    slots, sheets, cell = _thumbnails(_priority(pq, gt, worst_metric), val_paths, _bbox(val_df))
    categories = val_df["category"].astype(str).tolist() if "category" in val_df.columns else None
    failed = _failed_at_1(pq, labels)
    rows = []
    for r, q in enumerate(pq.to_dict("records")):
        rows.append(
            [
                int(q["item"]),
                int(q["label"]),
                None if categories is None else categories[int(q["item"])],
                int(q["n_gt"]),
                [_number(q[m]) for m in metrics],
                failed[r],
                [int(i) for i in q["retrieved"]],
                [_number(d, 3) for d in q["distances"]],  # as the page shows them (rounded once)
                gt[r],
            ]
        )
    payload = {
        "metrics": metrics,
        "worst_metric": worst_metric if worst_metric in metrics else (metrics[0] if metrics else None),
        "query_fields": list(QUERY_FIELDS),
        "queries": rows,
        "items": {
            "label": [int(x) for x in labels],
            "path": val_df["path"].astype(str).tolist(),
            "thumb": [slots.get(i, -1) for i in range(n_items)],
        },
        "categories": sorted({row[2] for row in rows if row[2] is not None}),
        "thumbs": {"cell": cell, "columns": SHEET_COLUMNS, "per_sheet": SHEET_COLUMNS * SHEET_ROWS},
    }
    return QueryTable(payload, sheets, cell, len(slots), n_items)
