"""report: write runs/report/index.html, one self-contained page for the pipeline run in runs/."""

from __future__ import annotations

import sys
from pathlib import Path

from reprokit.core.config import Config, load_config
from reprokit.core.fileio import remove_outputs
from reprokit.core.layout import ReportDir, RunsDir
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.data.source import load_dataset, scored_rows
from reprokit.visualize.report import write_report

__all__ = ["run", "main"]

_RUNS = RunsDir()  # the project's run folder: the paths' defaults


def run(cfg: Config, *, runs: str | Path = _RUNS.root, out: str | Path = _RUNS.report.root) -> None:
    """The stage's work: the page of the run folder ``runs``, written to ``out``, with the images of the
    split validate scored (it reads the keys dvc.yaml lists under its params)."""
    report_dir = ReportDir(out)
    remove_outputs(report_dir.root)  # a page of an earlier run never survives a failed one
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    val_df, val_paths = scored_rows(cfg, df, paths)  # the split validate scored (a sweep trial: the tuning split)
    summary = write_report(RunsDir(runs), val_df, val_paths, report_dir)
    print(
        f"report: {summary.n_queries:,} queries of run {summary.run_name} ({summary.size_bytes / 2**20:.1f} MB) "
        f"-> open {summary.page.resolve().as_uri()}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        args = stage_parser("report", __doc__, runs=_RUNS.root, out=_RUNS.report.root).parse_args(argv)
        remove_outputs(ReportDir(args.out).root)  # before the config is read: a bad config leaves no old page
        run(load_config(args.params), runs=args.runs, out=args.out)

    run_main(stage, "report", argv)
