"""mirror: replay runs/train, runs/validate, runs/visualize into the configured logger.

Writes runs/mirror/report.json. A logger failure prints a warning and is recorded there; the
stage fails only with ``logger.strict: true`` (or when the backend package is not installed).
"""

from __future__ import annotations

import argparse

from reprokit.core.config import load_config
from reprokit.core.stage_runner import run_main
from reprokit.mirror import mirror_run


def main() -> None:
    parser = argparse.ArgumentParser(prog="mirror", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    cfg = load_config(args.params)
    mirror_run(runs_dir=args.runs, logger=cfg.logger, tags=cfg.tags, project_dir=".")


if __name__ == "__main__":
    run_main(main, "mirror")
