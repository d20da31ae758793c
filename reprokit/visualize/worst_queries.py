"""The worst-queries figure: each row a query, its nearest gallery items and its ground truth.

Row layout: the query (blue frame) | its top-k retrieved items with their distances (green
frame if relevant, red if not) | up to ``n_ground_truth`` ground-truth items it should have
found (grey frame). Queries are ranked by one per-query metric, worst first (ties by item).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from reprokit.core.config import VisualizeConfig
from reprokit.core.errors import ConfigError
from reprokit.core.fileio import atomic_path
from reprokit.core.metric_names import EXTRA_METRICS
from reprokit.evaluate.per_query import read_per_query  # re-exported: read here by the visualize stage

__all__ = ["worst_queries", "draw_worst_queries", "read_per_query", "query_rows", "Cell", "tile", "compose", "save_png"]

BLUE, GREEN, RED, GREY = (40, 90, 220), (30, 160, 60), (210, 40, 40), (150, 150, 150)
TILE, FRAME, GAP, CAPTION = 64, 4, 6, 14
TILE_W, TILE_H = TILE + 2 * FRAME, TILE + 2 * FRAME + CAPTION


def worst_queries(pq: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    if metric not in pq.columns:
        allowed = [c for c in pq.columns if "@" in c or c in EXTRA_METRICS]
        raise ConfigError(
            f"visualize.metric must be one of the per-query metrics in the table ({', '.join(allowed)}); got {metric!r}",
            hint="re-run validate (dvc repro) after changing validate's metrics",
        )
    scored = pq[pq[metric].notna()]  # queries without ground truth have no score
    return scored.sort_values([metric, "item"], kind="stable").head(n)


@dataclass(frozen=True)
class Cell:
    """One tile of a query's row: an item (a row of the validation split), its frame colour and caption."""

    item: int
    color: tuple[int, int, int]
    caption: str
    kind: str  # "query", "retrieved" or "truth"


def query_rows(pq: pd.DataFrame, val_df: pd.DataFrame, cfg: VisualizeConfig) -> list[list[Cell]]:
    """The rows both figures show: each worst query, its top-k retrieved items, its first ground truth."""
    labels = val_df["label"].to_numpy()
    gallery = val_df["is_gallery"].to_numpy(dtype=bool)
    rows = []
    for q in worst_queries(pq, cfg.metric, cfg.n_queries).to_dict("records"):
        item, label = int(q["item"]), int(q["label"])
        cells = [Cell(item, BLUE, f"{cfg.metric} {q[cfg.metric]:.2f}", "query")]
        for idx, dist in list(zip(q["retrieved"], q["distances"]))[: cfg.top_k]:
            cells.append(Cell(int(idx), GREEN if labels[idx] == label else RED, f"d={dist:.3f}", "retrieved"))
        gt = [i for i in range(len(labels)) if labels[i] == label and gallery[i] and i != item]
        cells += [Cell(idx, GREY, "truth", "truth") for idx in gt[: cfg.n_ground_truth]]
        rows.append(cells)
    return rows


def tile(img: Image.Image, color: tuple[int, int, int], caption: str, font) -> Image.Image:
    """``img`` scaled to the tile, in a frame of ``color``, with ``caption`` below."""
    out = Image.new("RGB", (TILE_W, TILE_H), "white")
    out.paste(color, (0, 0, TILE_W, TILE + 2 * FRAME))
    out.paste(img.convert("RGB").resize((TILE, TILE), Image.Resampling.NEAREST), (FRAME, FRAME))
    ImageDraw.Draw(out).text((FRAME, TILE + 2 * FRAME + 1), caption, fill="black", font=font)
    return out


def compose(
    rows: list[list[Image.Image | None]], top_k: int, rows_per_block: int = 1, block_gap: int = 0
) -> Image.Image:
    """Rows of tiles on white, with wider gaps between the three groups (query | top-k | truth).

    A None leaves its slot empty; every ``rows_per_block`` rows (one query's) ``block_gap`` more pixels.
    """
    n_cols = max((len(r) for r in rows), default=1)
    width = GAP + n_cols * (TILE_W + GAP) + 2 * GAP
    n_blocks = -(-max(len(rows), 1) // rows_per_block)
    fig = Image.new("RGB", (width, GAP + max(len(rows), 1) * (TILE_H + GAP) + (n_blocks - 1) * block_gap), "white")
    for r, tiles in enumerate(rows):
        x, y = GAP, GAP + r * (TILE_H + GAP) + (r // rows_per_block) * block_gap
        for c, t in enumerate(tiles):
            if t is not None:
                fig.paste(t, (x, y))
            x += TILE_W + GAP + (GAP if c in (0, top_k) else 0)
    return fig


def save_png(fig: Image.Image, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.save(tmp, format="PNG")


def draw_worst_queries(
    pq: pd.DataFrame, val_df: pd.DataFrame, image_paths: list[Path], cfg: VisualizeConfig, out: Path
) -> int:
    """Write the figure to ``out``; return how many query rows it shows."""
    font = ImageFont.load_default()
    rows: list[list[Image.Image | None]] = []
    for cells in query_rows(pq, val_df, cfg):
        tiles: list[Image.Image | None] = []
        for cell in cells:
            with Image.open(image_paths[cell.item]) as img:
                tiles.append(tile(img, cell.color, cell.caption, font))
        rows.append(tiles)
    save_png(compose(rows, cfg.top_k), out)
    return len(rows)
