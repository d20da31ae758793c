"""The Grad-CAM figure: the worst queries of the worst-queries figure, with where the model looks.

Each query takes two rows, in the worst-queries layout (query blue | its top-k retrieved items,
green if relevant, red if not, with their distances | its ground truth, grey):

- upper row: the query as the model sees it, each retrieved item with its own heat map for the
  pair (query, item), the ground truth without one;
- lower row: under each retrieved item, the query with *its* heat map for that same pair.

Images are the model's inputs (cropped to the bounding box, resized to ``data.image_size``), the
maps Grad-CAM's (:mod:`reprokit.visualize.gradcam`), coloured from blue (cold) to red (hot) and
laid over the image in proportion to their heat, so cold regions show the plain image.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from reprokit.core.config import VisualizeConfig
from reprokit.data.images import ImageDataset
from reprokit.visualize.gradcam import GradCamLayer, pair_cams
from reprokit.visualize.worst_queries import BLUE, GAP, TILE, TILE_W, compose, query_rows, save_png, tile

__all__ = ["draw_gradcam", "draw_no_gradcam", "jet", "overlay"]

HEAT_ALPHA = 0.6  # opacity of the colour where the map is hottest (1.0); 0 where it is cold
LINE = 12  # pixels per line of a label tile
HEADER_FONT, HEADER_LINE = 12, 16  # the header's font size and pixels per line
SIMILARITY = {"euclidean": "-euclidean distance", "cosine": "cosine similarity"}


def jet(x: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 colours of values in [0, 1]: blue, cyan, yellow, red (the classic 'jet' ramp)."""
    x = np.clip(x, 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)
    return (rgb * 255).round().astype(np.uint8)


def overlay(image: torch.Tensor, cam: np.ndarray, size: int = TILE) -> Image.Image:
    """The image [C, H, W] in [0, 1] scaled to ``size`` px, coloured by ``cam`` [H, W] in [0, 1]."""
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    base_img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).convert("RGB")
    base = np.asarray(base_img.resize((size, size), Image.Resampling.NEAREST), dtype=np.float32)
    heat_img = Image.fromarray((np.clip(cam, 0, 1) * 255).round().astype(np.uint8))
    heat = np.asarray(heat_img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    alpha = (HEAT_ALPHA * heat)[..., None]
    mixed = base * (1.0 - alpha) + jet(heat).astype(np.float32) * alpha
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))


def _plain(image: torch.Tensor) -> Image.Image:
    return overlay(image, np.zeros(image.shape[1:], dtype=np.float32))


def _label_tile(lines: list[str], font) -> Image.Image:
    out = Image.new("RGB", (TILE_W, TILE_W), "white")
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((2, 4 + i * LINE), line, fill=(60, 60, 60), font=font)
    return out


def _text_font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _header(fig: Image.Image, lines: list[str]) -> Image.Image:
    font = _text_font(HEADER_FONT)
    # Wrapped to the figure (about 6.5 px per character at this size): a narrow figure keeps it all.
    lines = [part for line in lines for part in textwrap.wrap(line, width=max(20, int((fig.width - 2 * GAP) / 6.5)))]
    out = Image.new("RGB", (fig.width, fig.height + GAP + HEADER_LINE * len(lines)), "white")
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((GAP, GAP + i * HEADER_LINE), line, fill="black", font=font)
    out.paste(fig, (0, GAP + HEADER_LINE * len(lines)))
    return out


def draw_gradcam(
    pq: pd.DataFrame,
    val_df: pd.DataFrame,
    images: ImageDataset,
    model: nn.Module,
    layer: GradCamLayer,
    cfg: VisualizeConfig,
    distance: str,
    out: Path,
) -> int:
    """Write the figure to ``out``; return how many query rows it shows."""
    font = ImageFont.load_default()
    rows = query_rows(pq, val_df, cfg)
    pairs = [(cells[0].item, c.item) for cells in rows for c in cells if c.kind == "retrieved"]
    needed = sorted({i for cells in rows for c in cells for i in (c.item,)})
    decoded = dict(zip(needed, images.decode(needed))) if needed else {}
    if pairs:
        q_maps, o_maps, _ = pair_cams(
            model,
            layer,
            torch.stack([decoded[q] for q, _ in pairs]),
            torch.stack([decoded[o] for _, o in pairs]),
            distance,
        )
    maps = iter(zip(q_maps, o_maps)) if pairs else iter(())
    grid: list[list[Image.Image | None]] = []
    for cells in rows:
        upper: list[Image.Image | None] = []
        lower: list[Image.Image | None] = [_label_tile(["the query,", "for each", "match:"], font)]
        for cell in cells:
            img = decoded[cell.item]
            if cell.kind == "retrieved":
                q_map, o_map = next(maps)
                upper.append(tile(overlay(img, o_map), cell.color, cell.caption, font))
                lower.append(tile(overlay(decoded[cells[0].item], q_map), BLUE, "query", font))
            else:
                upper.append(tile(_plain(img), cell.color, cell.caption, font))
        grid += [upper, lower]
    header = [
        f"Grad-CAM at {layer.path} ({type(layer.module).__name__}) of the similarity "
        f"({SIMILARITY.get(distance, distance)}) of each query and retrieved item;",
        "upper row: the retrieved item's map, lower row: the query's map for that same pair; red = hot.",
    ]
    save_png(_header(compose(grid, cfg.top_k, rows_per_block=2, block_gap=3 * GAP), header), out)
    return len(rows)


def draw_no_gradcam(reason: str, out: Path, width: int = 640) -> None:
    """A figure that says why there is no Grad-CAM: the stage's declared output exists either way."""
    font, line_h = _text_font(13), 17
    lines = textwrap.wrap(f"no Grad-CAM: {reason}", width=max(20, (width - 2 * GAP) // 7))
    fig = Image.new("RGB", (width, 2 * GAP + line_h * max(len(lines), 1)), "white")
    draw = ImageDraw.Draw(fig)
    for i, line in enumerate(lines):
        draw.text((GAP, GAP + i * line_h), line, fill=(170, 30, 30), font=font)
    save_png(fig, out)
