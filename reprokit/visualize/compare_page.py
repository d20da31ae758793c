"""The page ``reprokit compare A B --html PATH`` writes: each flipped query, A's top-k beside B's.

In the report's style (:func:`reprokit.visualize.report_html.page_style`, plus the few rules of
``CSS`` below, all in one place) and self-contained like the report: images inline as data URIs,
no script, and the report's Content-Security-Policy, so the browser refuses any request. Takes
plain data (any objects with the attributes :class:`reprokit.provenance.compare.Flip` has), so
this layer imports nothing above it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reprokit.core.fileio import write_text
from reprokit.visualize.report_html import CSP, page_style

__all__ = ["write_compare_page", "data_uri", "CSS"]

# What this page adds to the report's stylesheet: the flipped queries' rows.
CSS = """
.flip { border-top: 1px solid var(--line); padding: 10px 0; display: grid; grid-template-columns: 84px auto;
  gap: 4px 12px; }
.flip h3 { grid-column: 1 / -1; font-size: 13.5px; margin: 0; font-weight: 500; word-break: break-all; }
.flip > figure { grid-row: span 2; }
.run { display: flex; gap: 8px; align-items: flex-start; }
.run .group-label { align-self: center; }
figure.tile img, figure.tile .none { width: 64px; height: 64px; display: block; image-rendering: pixelated;
  border: 3px solid var(--grey); border-radius: 3px; background: #eee; }
figure.tile.query img { border-color: var(--blue); }
figure.tile.hit img { border-color: var(--green); }
figure.tile.miss img { border-color: var(--red); }
figure.tile .none { background: repeating-linear-gradient(45deg, #eee, #eee 4px, #ddd 4px, #ddd 8px); }
.down { color: var(--red); } .up { color: var(--green); }
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
        self.read = read
        self.cache: dict[str, str | None] = {}

    def figure(self, path: str, css: str, caption: str) -> str:
        if path not in self.cache:
            data = self.read(path)
            self.cache[path] = data_uri(data) if data else None
        uri = self.cache[path]
        img = (
            f'<img src="{uri}" alt="{html.escape(path)}" title="{html.escape(path)}">'
            if uri
            else f'<div class="none" title="{html.escape(path)} (no image)"></div>'
        )
        return f'<figure class="tile {css}">{img}<figcaption>{html.escape(caption)}</figcaption></figure>'


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
    head = (
        f"<h3>{n}. <b>{html.escape(flip.path)}</b> — label {flip.label}{cat} — {html.escape(metric)} "
        f'{flip.metric_a:.3f} → {flip.metric_b:.3f} <span class="{trend}">({flip.change:+.3f})</span></h3>'
    )
    return (
        f'<section class="flip">{head}{images.figure(flip.path, "query", "query")}'
        f'<div class="run"><span class="group-label">A</span>{_retrieved(images, flip.top_a)}</div>'
        f'<div class="run"><span class="group-label">B</span>{_retrieved(images, flip.top_b)}</div></section>'
    )


def _metrics_table(rows: Sequence[tuple[str, float | None, float | None]]) -> str:
    def cell(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    def gain(a: float | None, b: float | None) -> str:
        if a is None or b is None:
            return '<td class="num"></td>'
        return f'<td class="gain{" neg" if b < a else ""}">{b - a:+.4f}</td>'

    body = "".join(
        f'<tr><td><code class="key">{html.escape(m)}</code></td><td class="num">{cell(a)}</td>'
        f'<td class="num">{cell(b)}</td>{gain(a, b)}</tr>'
        for m, a, b in rows
    )
    return (
        '<table><tr><th>metric</th><th class="num">A</th><th class="num">B</th><th class="num">B−A</th></tr>'
        f"{body}</table>"
    )


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
    a, b = html.escape(label_a), html.escape(label_b)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>reprokit compare: {a} vs {b}</title>",
        f"<style>{page_style()}{CSS}</style></head><body>",
        f'<header class="top"><div class="kicker">reprokit compare</div><h1>{a} → {b}</h1><ul class="chips">'
        f'<li class="chip"><b>A</b><code>{a}</code></li><li class="chip"><b>B</b><code>{b}</code></li>'
        f'<li class="chip"><b>queries</b>{n_queries}</li></ul></header><main>',
        f'<div class="card"><h2>Overall <small>B − A; {n_queries} queries with ground truth in both runs, '
        f"on the same validation data</small></h2>{_metrics_table(overall)}</div>",
    ]
    for title, flips in sections:
        parts.append(
            f'<div class="card"><h2>{html.escape(title)}</h2><p class="note">Each query: A\'s top-k above '
            "B's, nearest first (green ✓: same label as the query, red ✗: not).</p>"
        )
        parts += [_flip(images, n, f, metric) for n, f in enumerate(flips, start=1)] or ["<p>(none)</p>"]
        parts.append("</div>")
    parts.append("</main></body></html>\n")
    return write_text(out, "\n".join(parts))
