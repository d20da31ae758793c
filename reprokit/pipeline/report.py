"""report: write runs/report/index.html, one self-contained page for the pipeline run in runs/."""

from __future__ import annotations

import sys

from reprokit.core.config import load_config
from reprokit.core.fileio import remove_outputs
from reprokit.core.layout import ReportDir, RunsDir
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.data.source import load_dataset, scored_rows
from reprokit.visualize.report import write_report


def run() -> None:
    runs = RunsDir()
    parser = stage_parser("report", __doc__, runs=runs.root, out=runs.report.root)
    args = parser.parse_args()
    out = ReportDir(args.out)
    remove_outputs(out.root)  # a page of an earlier run never survives a failed one

    cfg = load_config(args.params)  # it reads the keys dvc.yaml lists under its params
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    val_df, val_paths = scored_rows(cfg, df, paths)  # the split validate scored (a sweep trial: the tuning split)
    summary = write_report(RunsDir(args.runs), val_df, val_paths, out)
    print(
        f"report: {summary.n_queries:,} queries of run {summary.run_name} ({summary.size_bytes / 2**20:.1f} MB) "
        f"-> open {summary.page.resolve().as_uri()}",
        file=sys.stderr,
    )


def main() -> None:
    """The stage's entry point: errors become one line on stderr and exit code 1."""
    run_main(run, "report")
