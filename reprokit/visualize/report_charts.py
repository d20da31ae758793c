"""The report's charts, drawn by matplotlib as SVG and returned as ``data:`` URIs.

matplotlib's object API (``Figure``, no pyplot) keeps the global backend untouched. Each chart
is an ``<img>`` of its own SVG: the page needs no plotting script, and the ids matplotlib writes
inside one SVG cannot collide with another's. Text stays text (``svg.fonttype: none``, its
font-family list ending in the generic ``sans-serif``): the browser draws it with a local
font, so nothing is fetched, and the files stay small.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["cmc_chart", "curves_chart", "svg_data_uri", "CHART_RC"]

TRAINED, BASELINE, EPOCH = "#2858c8", "#8a8f98", "#d0552b"
# Fixed salt and no date: the same run gives the same bytes.
CHART_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e6ea",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9aa0a8",
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}


def svg_data_uri(fig: Figure, salt: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({**CHART_RC, "svg.hashsalt": salt}):
        # The figures lay themselves out (constrained layout): a "tight" bbox would lay out twice.
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


def _finite(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def cmc_chart(cmc: dict[str, list[float]], baseline: dict[str, float]) -> str:
    """CMC@k of the trained embedding for k = 1..K, with the raw-pixel baseline's CMC@k points."""
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(4.6, 3.0), layout="constrained")
        ax = fig.add_subplot()
        k, value = _finite(cmc.get("k", []), cmc.get("cmc", []))
        ax.plot(k, value, marker="o", markersize=4, color=TRAINED, label="trained embedding")
        raw = sorted(
            (int(name.split("@")[1]), v)
            for name, v in baseline.items()
            if name.startswith("cmc@") and name.split("@")[1].isdigit()
        )
        if raw:
            ax.plot(
                [p[0] for p in raw],
                [p[1] for p in raw],
                marker="s",
                markersize=4,
                linestyle="--",
                color=BASELINE,
                label="raw pixels",
            )
        ax.set_xlabel("k (retrieved items)")
        ax.set_ylabel("CMC@k")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(sorted({int(x) for x in k} | {p[0] for p in raw}))
        ax.legend(loc="center right")
        return svg_data_uri(fig, "cmc")


def curves_chart(
    step: dict[str, list[float]] | None,
    epoch: dict[str, list[float]] | None,
    validation: dict[str, list[float]] | None = None,
) -> str | None:
    """One small panel per training statistic (the loss first): per step, and the per-epoch mean
    drawn at the step where each epoch ended; then, when training validated, one panel of the
    retrieval metrics at each validated epoch's end (``val/cmc@1``, ...)."""
    table = step or epoch
    if not table:
        return None
    names = [c for c in table if c not in ("step", "epoch")]
    names.sort(key=lambda c: (c != "loss", c))
    if not names:
        return None
    metrics = [c for c in (validation or {}) if c.startswith("val/")]
    with matplotlib.rc_context(CHART_RC):
        n_panels = len(names) + bool(metrics)  # the validation panel last, its legend beside it (+0.9 in)
        fig = Figure(figsize=(2.6 * n_panels + 0.9 * bool(metrics), 2.5), layout="constrained")
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        if metrics and validation:  # metrics: validation's val/ columns
            ax = axes[-1]
            for name in metrics:
                x, y = _finite(validation["step"], validation[name])
                ax.plot(x, y, marker="o", markersize=3, linewidth=1.1, label=name.removeprefix("val/"))
            ax.set_title("validation while training")
            ax.set_xlabel("step")
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)  # beside: the curves fill the panel
        for ax, name in zip(axes, names):
            if step and name in step:
                x, y = _finite(step["step"], step[name])
                ax.plot(x, y, color=TRAINED, linewidth=0.9, alpha=0.75, label="per step")
            if epoch and name in epoch and "step" in epoch:
                x, y = _finite(epoch["step"], epoch[name])
                ax.plot(x, y, color=EPOCH, marker="o", markersize=3.5, linewidth=1.2, label="epoch mean")
            ax.set_title(name)
            ax.set_xlabel("step")
        axes[0].legend(loc="upper right", fontsize=8)
        return svg_data_uri(fig, "curves")
