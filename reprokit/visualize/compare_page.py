"""The page ``reprokit compare A B --html PATH`` writes: each flipped query, A's top-k beside B's.

Self-contained: the images are inline (data URIs), the style is the one ``CSS`` block below, and
there is no script, font or any other request leaving the file. Takes plain data (any objects with
the attributes :class:`reprokit.provenance.compare.Flip` has), so this layer imports nothing above it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reprokit.core.fileio import write_text

__all__ = ["write_compare_page", "data_uri", "CSS"]

# The page's whole style, in one place (the report stage's style may replace it).
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 2em; }
table.metrics { border-collapse: collapse; } table.metrics td, table.metrics th { padding: 2px 10px; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
.flip { border-top: 1px solid #ddd; padding: 8px 0; display: grid; grid-template-columns: 90px auto; gap: 4px 12px; }
.flip h3 { grid-column: 1 / -1; font-size: 1em; margin: 0; font-weight: normal; }
.query { grid-row: span 2; }
.run { display: flex; gap: 6px; align-items: flex-start; }
.run .tag { width: 1.5em; font-weight: bold; padding-top: 24px; }
figure { margin: 0; text-align: center; font-size: 11px; }
figure img, figure .missing { width: 64px; height: 64px; image-rendering: pixelated; border: 4px solid #999;
  display: block; background: #eee; }
.q img { border-color: #2856dc; } .hit img { border-color: #1ea03c; } .miss img { border-color: #d22828; }
.missing { line-height: 64px; color: #777; }
.down { color: #b00; } .up { color: #070; }
"""

MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"BM": "image/bmp"}


def data_uri(data: bytes) -> str:
    mime = next((m for magic, m in MIME.items() if data.startswith(magic)), "application/octet-stream")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _Images:
    """Data URIs of the items' images, each read and encoded once."""

    def __init__(self, read: Callable[[str], bytes | None]) -> None:
        self.read, self.cache = read, {}

    def figure(self, path: str, css: str, caption: str) -> str:
        if path not in self.cache:
            data = self.read(path)
            self.cache[path] = data_uri(data) if data else None
        uri = self.cache[path]
        img = (f'<img src="{uri}" alt="{html.escape(path)}" title="{html.escape(path)}">' if uri
               else f'<div class="missing" title="{html.escape(path)}">no image</div>')
        return f'<figure class="{css}">{img}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _retrieved(images: _Images, items: Sequence[Any]) -> str:
    out = []
    for i, item in enumerate(items, start=1):
        mark = {True: "✓", False: "✗", None: "?"}[item.relevant]
        css = {True: "hit", False: "miss", None: ""}[item.relevant]
        out.append(images.figure(item.path, css, f"{i}. {mark} d={item.distance:.3f}"))
    return "".join(out)


def _flip(images: _Images, n: int, flip: Any, metric: str) -> str:
    cat = f", category {html.escape(flip.category)}" if flip.category else ""
    trend = "down" if flip.change < 0 else "up"
    head = (f"<h3>{n}. <b>{html.escape(flip.path)}</b> — label {flip.label}{cat} — {html.escape(metric)} "
            f'{flip.metric_a:.3f} → {flip.metric_b:.3f} <span class="{trend}">({flip.change:+.3f})</span></h3>')
    return (
        f'<section class="flip">{head}{images.figure(flip.path, "q query", "query")}'
        f'<div class="run"><span class="tag">A</span>{_retrieved(images, flip.top_a)}</div>'
        f'<div class="run"><span class="tag">B</span>{_retrieved(images, flip.top_b)}</div></section>'
    )


def _metrics_table(rows: Sequence[tuple[str, float | None, float | None]]) -> str:
    def cell(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    body = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{cell(a)}</td><td>{cell(b)}</td>"
        f"<td>{'' if a is None or b is None else f'{b - a:+.4f}'}</td></tr>"
        for m, a, b in rows
    )
    return f'<table class="metrics"><tr><th>metric</th><th>A</th><th>B</th><th>B−A</th></tr>{body}</table>'


def write_compare_page(
    out: Path,
    *,
    label_a: str,
    label_b: str,
    metric: str,
    n_queries: int,
    overall: Sequence[tuple[str, float | None, float | None]],
    sections: Sequence[tuple[str, Sequence[Any]]],
    read_image: Callable[[str], bytes | None],
) -> Path:
    """Write the page; ``sections``: (title, flips) pairs, e.g. regressed then improved."""
    images = _Images(read_image)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>reprokit compare: {html.escape(label_a)} vs {html.escape(label_b)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>reprokit compare</h1><p>A: <b>{html.escape(label_a)}</b><br>B: <b>{html.escape(label_b)}</b><br>"
        f"{n_queries} queries with ground truth in both runs, on the same validation data. Each flipped query: "
        f"A's top-k above B's, nearest first (green ✓: same label as the query, red ✗: not).</p>",
        _metrics_table(overall),
    ]
    for title, flips in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts += [_flip(images, n, f, metric) for n, f in enumerate(flips, start=1)] or ["<p>(none)</p>"]
    parts.append("</body></html>\n")
    return write_text(out, "\n".join(parts))
