"""The report page's HTML: one file, every asset inline, a policy that forbids any request.

The Content-Security-Policy allows only inline styles and scripts and ``data:`` images, so the
browser itself refuses anything that would leave the file (a CDN script, a web font, a remote
image), even if a later edit added one. Every value from the run is escaped here; the
per-query JSON sits in a ``<script type="application/json">`` the page's script parses.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from reprokit.visualize.report_data import ReportData
from reprokit.visualize.report_queries import QueryTable, query_records

__all__ = ["render_page", "page_style", "CSP"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _asset(name: str) -> str:
    return resources.files("reprokit.visualize").joinpath("report_assets", name).read_text(encoding="utf-8")


def page_style() -> str:
    """The report's stylesheet (system fonts, the query/relevant/irrelevant/truth frame colours),
    for another page in the report's style (e.g. the comparison of two runs)."""
    return _asset("report.css")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value(value: Any) -> str:
    """A param value as it reads in params.yaml."""
    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _chips(data: ReportData) -> str:
    ident = data.identity
    chips = []
    if ident.commit:
        chips.append(f'<li class="chip"><b>commit</b><code>{_e(ident.commit[:12])}</code></li>')
    else:
        chips.append('<li class="chip"><b>commit</b>not a git repository</li>')
    if ident.dirty is not None:
        state = "dirty" if ident.dirty else "clean"
        title = (
            "tracked files differed from the commit (train/artifacts/diff.patch)"
            if ident.dirty
            else "tracked files were the commit's"
        )
        chips.append(f'<li class="chip {state}" title="{_e(title)}">{state}</li>')
    if ident.branch:
        chips.append(f'<li class="chip"><b>branch</b>{_e(ident.branch)}</li>')
    if ident.experiment:
        chips.append(f'<li class="chip"><b>experiment</b>{_e(ident.experiment)}</li>')
    for tag in ident.tags:
        chips.append(f'<li class="chip tag">{_e(tag)}</li>')
    chips.append(f'<li class="chip" title="pipeline run id"><b>run id</b><code>{_e(ident.run_id)}</code></li>')
    return '<ul class="chips">' + "".join(chips) + "</ul>"


def _overall(data: ReportData) -> str:
    rows = []
    for name, value in data.overall.items():
        raw = data.baseline.get(name)
        gain = "" if raw is None else f"{value - raw:+.3f}"
        cls = "gain neg" if raw is not None and value < raw else "gain"
        rows.append(
            f'<tr><td><code class="key">{_e(name)}</code></td><td class="big bar" style="--v:{value:.4f}">{value:.3f}</td>'
            f'<td class="num">{"–" if raw is None else f"{raw:.3f}"}</td><td class="{cls}">{gain}</td></tr>'
        )
    counts = []
    if data.n_queries is not None:
        counts.append(f"{data.n_queries:,} queries")
    if data.n_queries_without_gt:
        counts.append(f"{data.n_queries_without_gt:,} without ground truth (left out of the averages)")
    note = "raw pixels: nearest neighbours of the flattened images on the same split (validate/baseline.json)"
    return (
        f'<section class="card" id="overall"><h2>Overall metrics <small>{_e(", ".join(counts))}</small></h2>'
        '<table><thead><tr><th>metric</th><th class="num">trained</th><th class="num">raw pixels</th>'
        f'<th class="num">gain</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<p class="note">{_e(note)}</p></section>'
    )


def _params(data: ReportData) -> str:
    if not data.params_changed:
        body = '<p class="note">Every param is at its default.</p>'
    else:
        rows = "".join(
            f'<tr><td><code class="key">{_e(p.key)}</code></td><td><code class="key">{_e(_value(p.value))}</code></td>'
            f'<td class="was"><code class="key">{_e(_value(p.default))}</code></td></tr>'
            for p in data.params_changed
        )
        body = f"<table><thead><tr><th>param</th><th>this run</th><th>default</th></tr></thead><tbody>{rows}</tbody></table>"
    return (
        '<section class="card" id="params"><h2>Params that differ from the defaults '
        f"<small>(reprokit's schema defaults)</small></h2>{body}</section>"
    )


def _categories(data: ReportData, counts: dict[str, int]) -> str:
    if not data.by_category:
        return '<section class="card" id="categories"><h2>Per category</h2><p class="note">The dataframe has no category column.</p></section>'
    names = list(next(iter(data.by_category.values())))
    head = "".join(f'<th class="num">{_e(n)}</th>' for n in names)
    rows = []
    for cat, values in data.by_category.items():
        cells = "".join(
            f'<td class="num bar" style="--v:{values[n]:.4f}">{values[n]:.3f}</td>' if n in values else "<td></td>"
            for n in names
        )
        rows.append(f'<tr><td>{_e(cat)}</td><td class="num">{counts.get(cat, 0):,}</td>{cells}</tr>')
    return (
        '<section class="card" id="categories"><h2>Per category</h2><div class="scroll"><table><thead><tr>'
        f'<th>category</th><th class="num">queries</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>'
    )


def _charts(cmc_uri: str | None, curves_uri: str | None, data: ReportData) -> tuple[str, str]:
    cmc = (
        f'<img class="chart" alt="CMC curve" src="{cmc_uri}">'
        if cmc_uri
        else '<p class="missing">validate/plots/cmc.tsv not found</p>'
    )
    final = ", ".join(f"{k} {v:.3f}" for k, v in data.train_metrics.items())
    curves = (
        f'<img class="chart" alt="training curves" src="{curves_uri}">'
        if curves_uri
        else '<p class="missing">train/plots/step.tsv not found</p>'
    )
    return (
        f'<section class="card" id="cmc"><h2>CMC curve <small>validate/plots/cmc.tsv</small></h2>{cmc}</section>',
        f'<section class="card" id="curves"><h2>Training curves <small>final epoch: {_e(final)}</small></h2>{curves}</section>',
    )


def _figures(data: ReportData) -> str:
    parts = []
    for title, path in data.figures.items():
        parts.append(
            f'<section class="card figure-card"><h2>{_e(title)} <small>visualize/{_e(path.name)}</small></h2>'
            f'<img class="figure" alt="{_e(title)}" src="{_png_uri(path)}"></section>'
        )
    return f'<div class="figures">{"".join(parts)}</div>' if parts else ""


def _queries(table: QueryTable) -> str:
    metrics = table.payload["metrics"]
    heads = "".join(f'<th class="num" data-sort="m:{_e(m)}">{_e(m)}</th>' for m in metrics)
    k = max((len(q["retrieved"]) for q in query_records(table.payload)), default=0)
    thumbs = (
        f"thumbnails for all {table.n_items:,} validation images"
        if table.n_thumbnails == table.n_items
        else f"thumbnails for {table.n_thumbnails:,} of {table.n_items:,} validation images (the worst queries' first)"
    )
    return f"""<section class="card" id="queries">
<h2>Every query <small>click a row for its top {k} and its ground truth · click a column to sort · {_e(thumbs)}</small></h2>
<div class="legend"><span><i class="th query"></i> query</span><span><i class="th hit"></i> relevant</span>
<span><i class="th miss"></i> not relevant</span><span><i class="th truth"></i> ground truth</span></div>
<div class="controls">
<label>category <select id="filter-category"><option value="">all</option></select></label>
<label><input type="checkbox" id="filter-failed"> failed at 1 only</label>
<span id="queries-count"></span>
</div>
<div class="scroll"><table id="queries-table"><thead><tr>
<th class="num" data-sort="item">item</th><th>query · top {k}</th><th class="num" data-sort="label">label</th>
<th data-sort="category">category</th><th class="num" data-sort="n_gt" title="ground-truth items in the gallery">R</th>
{heads}<th data-sort="failed" title="the nearest item is relevant">top 1</th>
</tr></thead><tbody></tbody></table></div>
<button id="queries-more" type="button" hidden>show 100 more</button>
</section>"""


def _sheet_styles(sheets: list[str]) -> str:
    return "\n".join(f'.s{i}{{background-image:url("{uri}")}}' for i, uri in enumerate(sheets))


def _json_script(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "</" would end the script element early; "<!--" could open an HTML comment in it.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(data: ReportData, table: QueryTable, cmc_uri: str | None, curves_uri: str | None) -> str:
    counts: dict[str, int] = {}
    for q in query_records(table.payload):
        if q["category"] is not None:
            counts[q["category"]] = counts.get(q["category"], 0) + 1
    cmc, curves = _charts(cmc_uri, curves_uri, data)
    missing = f'<p class="missing">not found, left out: {_e(", ".join(data.missing))}</p>' if data.missing else ""
    ident = data.identity
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(ident.run_name)} · reprokit report</title>
<style>
{page_style()}
{_sheet_styles(table.sheets)}
</style>
</head>
<body>
<header class="top">
<div class="kicker">reprokit · pipeline run report</div>
<h1 id="run-name">{_e(ident.run_name)}</h1>
{_chips(data)}
</header>
<main>
{_params(data)}
<div class="grid">{_overall(data)}{cmc}</div>
{_categories(data, counts)}
{curves}
{_figures(data)}
{_queries(table)}
</main>
<footer>
<p>Written by the report stage from the files under <code>runs/</code> (training run {_e(ident.train_run_name)},
<code>{_e(ident.train_run_id)}</code>);
every image, chart and script is inside this file.</p>
{missing}
</footer>
<script type="application/json" id="report-data">{_json_script(table.payload)}</script>
<script>
{_asset("report.js")}
</script>
</body>
</html>
"""
