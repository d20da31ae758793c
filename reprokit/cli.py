"""The ``reprokit`` command.

    reprokit reproduce REV [--tolerance T] [--keep]   re-run a past commit/experiment and compare its metrics
    reprokit mirror [--logger NAME]                   replay a finished run's files into the experiment logger
    reprokit check-data                               run every dataframe check on the configured dataset
    reprokit init [DIR] [--force]                     write a working pipeline into a git repository
    reprokit sweep FILE [--jobs N] [--storage URL] [--trials N] [--show] [--promote]
                                                      tune: each trial a DVC experiment, Optuna choosing

Errors are one line on stderr with a non-zero exit; ``--verbose`` or REPROKIT_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from reprokit.core.stage_runner import run_main

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprokit", description="Reproducible metric-learning pipelines on DVC.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="re-run a past revision in isolation and compare its metrics")
    rep.add_argument("rev", help="a commit, branch, tag or DVC experiment name")
    rep.add_argument("--tolerance", type=float, default=0.0, help="allowed absolute difference (default: exact)")
    rep.add_argument("--keep", action="store_true", help="keep the reproduced checkout and its outputs")
    rep.add_argument("--repo", default=".", help="the project repository (default: .)")
    rep.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    mir = sub.add_parser("mirror", help="replay a finished run's local files into the experiment logger")
    mir.add_argument("--params", default="params.yaml")
    mir.add_argument("--runs", default="runs", help="the run folder (default: runs)")
    mir.add_argument("--logger", help="override logger.name from params.yaml")
    mir.add_argument("--strict", action="store_true", help="exit non-zero when mirroring fails")
    mir.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    ini = sub.add_parser("init", help="write a reprokit pipeline (dvc.yaml, params.yaml, stages/) into a git repository")
    ini.add_argument("dir", nargs="?", default=".", help="the repository (default: .)")
    ini.add_argument("--force", action="store_true", help="overwrite files that already exist")
    ini.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    swp = sub.add_parser("sweep", help="run a hyper-parameter sweep: each trial a DVC experiment, Optuna choosing")
    swp.add_argument("file", help="the sweep file, e.g. sweeps/lr_margin.yaml (its stem names the sweep)")
    swp.add_argument("--jobs", type=int, default=1, help="trials at once (capped by the GPUs when trials use GPUs)")
    swp.add_argument("--storage", help="the study: a journal file (default .reprokit/sweeps/<name>.journal) "
                     "or postgresql://user@host/db for workers on several machines")
    swp.add_argument("--trials", type=int, help="the number of trials (default: the sweep file's)")
    what = swp.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="rank the trials by the objective; show the best")
    what.add_argument("--promote", action="store_true", help="re-run the best params on the full training split and branch it")
    swp.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    chk = sub.add_parser("check-data", help="check the configured dataframe and its images")
    chk.add_argument("--params", default="params.yaml")
    chk.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    return parser


def _reproduce(args: argparse.Namespace) -> int:
    from reprokit.provenance.reproduce import reproduce

    report = reproduce(args.rev, repo=Path(args.repo), tolerance=args.tolerance, keep=args.keep)
    return 0 if report.ok else 1


def _mirror(args: argparse.Namespace) -> int:
    from reprokit.core.config import load_config
    from reprokit.mirror import mirror_run

    cfg = load_config(args.params)
    logger = cfg.logger
    if args.logger or args.strict:
        name = args.logger or logger.name
        # params.yaml's logger.args belong to its logger: another one chosen here starts from its defaults.
        backend_args = logger.args if name == logger.name else {}
        logger = dataclasses.replace(logger, name=name, args=backend_args, strict=args.strict or logger.strict)
        logger.check("logger")
    report = mirror_run(runs_dir=args.runs, logger=logger, tags=cfg.tags, project_dir=".")
    return 0 if report.get("ok") else 1


def _check_data(args: argparse.Namespace) -> int:
    from reprokit.core.config import load_config
    from reprokit.data.source import load_dataset

    df, _, csv_path = load_dataset(load_config(args.params))
    counts = df["split"].value_counts().to_dict()
    print(f"{csv_path}: ok ({len(df)} rows: {counts.get('train', 0)} train, {counts.get('validation', 0)} validation)")
    return 0


def _init(args: argparse.Namespace) -> int:
    from reprokit.project.init import describe, init_project

    print(describe(init_project(args.dir, force=args.force)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from reprokit.tune.command import sweep_command

    return sweep_command(Path(args.file), jobs=args.jobs, storage=args.storage, trials=args.trials, show=args.show,
                         promote=args.promote)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    handlers = {"reproduce": _reproduce, "mirror": _mirror, "check-data": _check_data, "init": _init, "sweep": _sweep}
    run_main(lambda: handlers[args.command](args), "reprokit")


if __name__ == "__main__":
    main(sys.argv[1:])
