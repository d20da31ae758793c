"""The page ``reprokit sweep FILE --show --html PATH`` writes: a sweep at a glance.

The objective by trial (with the best so far), the objective against each parameter of the
space, and the ranked trials, in the report's style and self-contained like it (charts are
matplotlib SVGs inlined as data URIs, no script, the report's Content-Security-Policy).

It takes plain data, so this layer imports nothing above it (``reprokit.tune.show.page_data``
builds it from the study)::

    {"name": str, "metric": str, "direction": "maximize" | "minimize", "objective": str (one line),
     "storage": str, "params": [{"key": str, "kind": "choice" | "int" | "float", "log": bool}],
     "trials": [{"number": int, "state": "complete" | "pruned" | "fail" | "running" | "waiting",
                 "value": float | None, "params": {key: value}, "experiment": str, "rank": int | None,
                 "note": str}]}   # ranked, best first
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from reprokit.core.fileio import write_text
from reprokit.visualize.report_charts import BASELINE, CHART_RC, EPOCH, TRAINED, svg_data_uri
from reprokit.visualize.report_html import CSP, page_style

__all__ = ["write_sweep_page"]

# Complete trials in the report's "trained" blue, pruned ones grey at their last reported value.
_STYLE = {"complete": (TRAINED, "o", "complete"), "pruned": (BASELINE, "x", "pruned (last reported value)")}


def _plotted(trials: list[dict]) -> list[dict]:
    return [t for t in trials if t["state"] in _STYLE and t["value"] is not None and math.isfinite(t["value"])]


def _by_trial(data: dict) -> str | None:
    points = sorted(_plotted(data["trials"]), key=lambda t: t["number"])
    if not points:
        return None
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(6.4, 3.0), layout="constrained")
        ax = fig.add_subplot()
        for state, (color, marker, label) in _STYLE.items():
            mine = [t for t in points if t["state"] == state]
            if mine:
                ax.scatter(
                    [t["number"] for t in mine],
                    [t["value"] for t in mine],
                    color=color,
                    marker=marker,
                    s=22,
                    label=label,
                    zorder=3,
                )
        best, xs, ys = None, [], []
        pick = max if data["direction"] == "maximize" else min
        for t in points:
            if t["state"] == "complete":
                best = t["value"] if best is None else pick(best, t["value"])
            if best is not None:
                xs.append(t["number"])
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", color=EPOCH, linewidth=1.2, label="best so far")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(data["metric"])
        ax.legend(loc="best", fontsize=8)
        return svg_data_uri(fig, "sweep-by-trial")


def _choice_position(x_of: dict[str, int], key: str, trial: dict) -> float:
    """A trial's x on a categorical axis: the slot of its value of ``key``."""
    return x_of[str(trial["params"][key])]


def _number_position(key: str, trial: dict) -> float:
    return float(trial["params"][key])


def _by_param(data: dict) -> str | None:
    points = _plotted(data["trials"])
    params = data["params"]
    if not points or not params:
        return None
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(2.9 * len(params), 2.7), layout="constrained")
        axes = fig.subplots(1, len(params), squeeze=False)[0]
        for ax, param in zip(axes, params):
            key = param["key"]
            mine = [t for t in points if key in t["params"]]
            if param["kind"] == "choice":  # categories side by side, in the order first seen
                labels = list(dict.fromkeys(str(t["params"][key]) for t in mine))
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlim(-0.5, len(labels) - 0.5)
                x_of = {label: i for i, label in enumerate(labels)}
                position: Callable[[dict], float] = functools.partial(_choice_position, x_of, key)
            else:
                position = functools.partial(_number_position, key)
                if param["log"]:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a narrow panel
            for state, (color, marker, _) in _STYLE.items():
                sel = [t for t in mine if t["state"] == state]
                if sel:
                    ax.scatter(
                        [position(t) for t in sel],
                        [t["value"] for t in sel],
                        color=color,
                        marker=marker,
                        s=22,
                        zorder=3,
                    )
            ax.set_title(key)
            ax.set_xlabel(key)
        axes[0].set_ylabel(data["metric"])
        return svg_data_uri(fig, "sweep-by-param")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(data: dict) -> str:
    keys = [p["key"] for p in data["params"]]
    head = "".join(
        f"<th>{html.escape(k)}</th>" for k in ["rank", "trial", "state", data["metric"], *keys, "experiment", "note"]
    )
    rows = []
    for t in data["trials"]:
        cells = [
            _cell(t["rank"]),
            str(t["number"]),
            html.escape(t["state"]),
            _cell(t["value"]),
            *(_cell(t["params"].get(k)) for k in keys),
            html.escape(t["experiment"]),
            html.escape(t["note"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _chart(uri: str | None, alt: str) -> str:
    return f'<img class="chart" alt="{alt}" src="{uri}">' if uri else '<p class="missing">no finished trial yet</p>'


def write_sweep_page(out: Path, data: dict) -> Path:
    """Write the sweep's page to ``out`` (atomically) and return it."""
    name = html.escape(data["name"])
    states: dict[str, int] = {}
    for t in data["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    chips = "".join(f'<li class="chip"><b>{html.escape(s)}</b>{n}</li>' for s, n in states.items())
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>reprokit sweep {name}</title><style>{page_style()}</style></head><body>",
        f'<header class="top"><div class="kicker">reprokit · sweep</div><h1>{name}</h1>'
        f'<ul class="chips"><li class="chip"><b>study</b><code>{html.escape(data["storage"])}</code></li>{chips}</ul>'
        "</header><main>",
        f'<section class="card"><h2>Objective by trial <small>{html.escape(data["direction"])} '
        f"{html.escape(data['objective'])}</small></h2>{_chart(_by_trial(data), 'objective by trial')}</section>",
        '<section class="card"><h2>Objective against each parameter</h2>'
        f"{_chart(_by_param(data), 'objective against each parameter')}</section>",
        f'<section class="card"><h2>Trials <small>ranked by {html.escape(data["metric"])}; '
        "each a DVC experiment (<code>dvc exp show</code>)</small></h2>" + _table(data) + "</section>",
        "</main></body></html>\n",
    ]
    return write_text(out, "\n".join(parts))
