"""mirror: replay runs/train, runs/validate, runs/visualize into the configured logger.

Writes runs/mirror/report.json. A logger failure prints a warning and is recorded there; the
stage fails only with ``logger.strict: true`` (or when the backend package is not installed).
"""

from __future__ import annotations

from reprokit.core.config import load_config
from reprokit.core.layout import RunsDir
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.mirror import mirror_run, reproduction_logger


def run() -> None:
    parser = stage_parser("mirror", __doc__, runs=RunsDir().root)
    args = parser.parse_args()

    cfg = load_config(args.params)
    logger = reproduction_logger(cfg.logger)
    mirror_run(runs_dir=args.runs, logger=logger, tags=cfg.tags, project_dir=".")


def main() -> None:
    """The stage's entry point: errors become one line on stderr and exit code 1."""
    run_main(run, "mirror")
