"""The run's report: one self-contained HTML page per pipeline run, ``runs/report/index.html``.

It holds the run's identity (name, commit, dirty or not, tags), the params that differ from
the defaults, the overall metrics beside the raw-pixel baseline, the per-category table, the CMC
and training curves, the worst-queries and Grad-CAM figures, and every query in a table that
sorts, filters and opens a query's top-k. Nothing on the page makes a request: charts are
matplotlib SVGs, images and the script are inline (see :mod:`reprokit.visualize.report_html`).

Split by job: :mod:`report_data` reads ``runs/``, :mod:`report_charts` draws,
:mod:`report_queries` builds the per-query table, :mod:`report_html` writes the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reprokit.core.fileio import write_text
from reprokit.core.layout import ReportDir, RunsDir
from reprokit.visualize.report_charts import cmc_chart, curves_chart
from reprokit.visualize.report_data import gather_report
from reprokit.visualize.report_html import render_page
from reprokit.visualize.report_queries import build_query_table
from reprokit.visualize.worst_queries import read_per_query

__all__ = ["ReportSummary", "write_report"]


@dataclass(frozen=True)
class ReportSummary:
    page: Path
    size_bytes: int
    n_queries: int
    n_thumbnails: int
    run_name: str


def write_report(runs: RunsDir, val_df: pd.DataFrame, val_paths: list[Path], out: ReportDir) -> ReportSummary:
    """Write ``out.page`` for the run in ``runs``; ``val_df``/``val_paths``: the validation split's
    rows and image files, in order (the rows ``per_query.tsv``'s item indices point at)."""
    data = gather_report(runs)
    table = build_query_table(read_per_query(data.per_query), val_df, val_paths, data.worst_metric)
    cmc = cmc_chart(data.cmc_curve, data.baseline) if data.cmc_curve else None
    curves = curves_chart(data.step_curve, data.epoch_curve, data.validation_curve)
    page = render_page(data, table, cmc, curves)
    write_text(out.page, page)
    return ReportSummary(
        out.page, len(page.encode()), len(table.payload["queries"]), table.n_thumbnails, data.identity.run_name
    )
