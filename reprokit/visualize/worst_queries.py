"""The worst-queries figure: each row a query, its nearest gallery items and its ground truth.

Row layout: the query (blue frame) | its top-k retrieved items with their distances (green
frame if relevant, red if not) | up to ``n_ground_truth`` ground-truth items it should have
found (grey frame). Queries are ranked by one per-query metric, worst first (ties by item).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from reprokit.core.config import VisualizeConfig
from reprokit.core.errors import ConfigError
from reprokit.core.fileio import atomic_path
from reprokit.core.metric_names import EXTRA_METRICS

__all__ = ["worst_queries", "draw_worst_queries", "read_per_query"]

BLUE, GREEN, RED, GREY = (40, 90, 220), (30, 160, 60), (210, 40, 40), (150, 150, 150)
TILE, FRAME, GAP, CAPTION = 64, 4, 6, 14


def read_per_query(path: Path) -> pd.DataFrame:
    pq = pd.read_csv(path, sep="\t", keep_default_na=True, dtype={"category": str, "path": str})
    pq["retrieved"] = [[int(x) for x in str(s).split()] if isinstance(s, str) else [] for s in pq["retrieved"]]
    pq["distances"] = [[float(x) for x in str(s).split()] if isinstance(s, str) else [] for s in pq["distances"]]
    return pq


def worst_queries(pq: pd.DataFrame, metric: str, n: int) -> pd.DataFrame:
    if metric not in pq.columns:
        allowed = [c for c in pq.columns if "@" in c or c in EXTRA_METRICS]
        raise ConfigError(
            f"visualize.metric must be one of the per-query metrics in the table ({', '.join(allowed)}); got {metric!r}",
            hint="re-run validate (dvc repro) after changing validate's metrics",
        )
    scored = pq[pq[metric].notna()]  # queries without ground truth have no score
    return scored.sort_values([metric, "item"], kind="stable").head(n)


def _tile(path: Path, color: tuple[int, int, int], caption: str, font) -> Image.Image:
    tile = Image.new("RGB", (TILE + 2 * FRAME, TILE + 2 * FRAME + CAPTION), "white")
    tile.paste(color, (0, 0, TILE + 2 * FRAME, TILE + 2 * FRAME))
    with Image.open(path) as img:
        tile.paste(img.convert("RGB").resize((TILE, TILE), Image.NEAREST), (FRAME, FRAME))
    ImageDraw.Draw(tile).text((FRAME, TILE + 2 * FRAME + 1), caption, fill="black", font=font)
    return tile


def draw_worst_queries(
    pq: pd.DataFrame, val_df: pd.DataFrame, image_paths: list[Path], cfg: VisualizeConfig, out: Path
) -> int:
    """Write the figure to ``out``; return how many query rows it shows."""
    font = ImageFont.load_default()
    labels = val_df["label"].to_numpy()
    gallery = val_df["is_gallery"].to_numpy(dtype=bool)
    rows = []
    for q in worst_queries(pq, cfg.metric, cfg.n_queries).to_dict("records"):
        item, label = int(q["item"]), int(q["label"])
        tiles = [_tile(image_paths[item], BLUE, f"{cfg.metric} {q[cfg.metric]:.2f}", font)]
        for idx, dist in list(zip(q["retrieved"], q["distances"]))[: cfg.top_k]:
            color = GREEN if labels[idx] == label else RED
            tiles.append(_tile(image_paths[idx], color, f"d={dist:.3f}", font))
        gt = [i for i in range(len(labels)) if labels[i] == label and gallery[i] and i != item]
        for idx in gt[: cfg.n_ground_truth]:
            tiles.append(_tile(image_paths[idx], GREY, "truth", font))
        rows.append(tiles)
    tile_w, tile_h = TILE + 2 * FRAME, TILE + 2 * FRAME + CAPTION
    n_cols = max((len(r) for r in rows), default=1)
    fig = Image.new("RGB", (GAP + n_cols * (tile_w + GAP) + GAP, GAP + max(len(rows), 1) * (tile_h + GAP)), "white")
    for r, tiles in enumerate(rows):
        x = GAP
        for c, tile in enumerate(tiles):
            fig.paste(tile, (x, GAP + r * (tile_h + GAP)))
            x += tile_w + GAP + (GAP if c in (0, cfg.top_k) else 0)  # wider gaps between the three groups
    with atomic_path(out) as tmp:
        fig.save(tmp, format="PNG")
    return len(rows)
