"""mirror: replay runs/train, runs/validate, runs/visualize into the configured logger.

Writes runs/mirror/report.json. A logger failure prints a warning and is recorded there; the
stage fails only with ``logger.strict: true`` (or when the backend package is not installed).
"""

from __future__ import annotations

from pathlib import Path

from reprokit.core.config import Config, load_config
from reprokit.core.layout import RunsDir
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.mirror import mirror_run, reproduction_logger

__all__ = ["run", "main"]

_RUNS = RunsDir()  # the project's run folder: the paths' defaults


def run(cfg: Config, *, runs: str | Path = _RUNS.root) -> None:
    """The stage's work: replay the run folder ``runs`` into ``cfg.logger``, tagged ``cfg.tags``."""
    logger = reproduction_logger(cfg.logger)
    mirror_run(runs_dir=runs, logger=logger, tags=cfg.tags, project_dir=".")


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        args = stage_parser("mirror", __doc__, runs=_RUNS.root).parse_args(argv)
        run(load_config(args.params), runs=args.runs)

    run_main(stage, "mirror", argv)
