"""The ``reprokit`` command.

    reprokit reproduce REV [--tolerance T] [--keep]   re-run a past commit/experiment and compare its metrics
    reprokit mirror [--logger NAME]                   replay a finished run's files into the experiment logger
    reprokit check-data                               every check that needs no training, every problem at once
    reprokit init [DIR] [--force]                     write a working pipeline into a git repository
    reprokit deps [--write]                           the files each stage reads that dvc.yaml does not list (--write adds them)
    reprokit compare A B [--html PATH]                metric deltas and the queries that flipped between two runs
    reprokit sweep FILE [--jobs N] [--storage URL] [--trials N] [--show [--html PATH]] [--promote]
                                                      tune: each trial a DVC experiment, Optuna choosing
    reprokit convert {cub,cars,sop,inshop} SRC --out DIR  a standard benchmark's official folder -> DIR/df.csv (OML)

Errors are one line on stderr with a non-zero exit; ``--verbose`` or REPROKIT_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from reprokit.core.layout import PARAMS_FILE, RUNS_ROOT
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
    mir.add_argument("--params", default=PARAMS_FILE)
    mir.add_argument("--runs", default=RUNS_ROOT, help=f"the run folder (default: {RUNS_ROOT})")
    mir.add_argument("--logger", help="override logger.name from params.yaml")
    mir.add_argument("--strict", action="store_true", help="exit non-zero when mirroring fails")
    mir.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    ini = sub.add_parser(
        "init", help="write a reprokit pipeline (dvc.yaml, params.yaml, stages/) into a git repository"
    )
    ini.add_argument("dir", nargs="?", default=".", help="the repository (default: .)")
    ini.add_argument("--force", action="store_true", help="overwrite files that already exist")
    ini.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="DIR",
        help="your code folder (repeatable), a dependency of train, validate and visualize "
        "(default: src/ when it exists; a missing one is created as a package)",
    )
    ini.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    dep = sub.add_parser("deps", help="list the files train, validate and visualize read that dvc.yaml does not list")
    dep.add_argument(
        "--write", action="store_true", help="add them to dvc.yaml (and drop a ${key} dep whose key is null)"
    )
    dep.add_argument("--params", default=PARAMS_FILE)
    dep.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    swp = sub.add_parser("sweep", help="run a hyper-parameter sweep: each trial a DVC experiment, Optuna choosing")
    swp.add_argument("file", help="the sweep file, e.g. sweeps/lr_margin.yaml (its stem names the sweep)")
    swp.add_argument("--jobs", type=int, default=1, help="trials at once (capped by the GPUs when trials use GPUs)")
    swp.add_argument(
        "--storage",
        help="the study: a journal file (default .reprokit/sweeps/<name>.journal) "
        "or postgresql://user@host/db for workers on several machines",
    )
    swp.add_argument("--trials", type=int, help="the number of trials (default: the sweep file's)")
    what = swp.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="rank the trials by the objective; show the best")
    what.add_argument(
        "--promote", action="store_true", help="re-run the best params on the full training split and branch it"
    )
    swp.add_argument(
        "--html",
        metavar="PATH",
        type=Path,
        help="with --show (implied): also write a page: objective by trial and against each parameter",
    )
    swp.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    cmp = sub.add_parser("compare", help="compare two finished runs: metric deltas and the queries that flipped")
    cmp.add_argument("a", help="a commit, branch, tag or DVC experiment name")
    cmp.add_argument("b", help="the run to compare with A (deltas are B - A)")
    cmp.add_argument("--html", metavar="PATH", help="also write a self-contained page: A's top-k beside B's")
    cmp.add_argument("--metric", help="order the flipped queries by this per-query metric (default: visualize.metric)")
    cmp.add_argument("--limit", type=int, default=20, help="flipped queries listed per direction (0: all; default 20)")
    cmp.add_argument("--repo", default=".", help="the project repository (default: .)")
    cmp.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    chk = sub.add_parser(
        "check-data", help="every check that needs no training (data, images, batches, model), all problems at once"
    )
    chk.add_argument("--params", default=PARAMS_FILE)
    chk.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)

    cnv = sub.add_parser("convert", help="write the OML dataframe of a standard benchmark from its official folder")
    cnv.add_argument("dataset", choices=("cub", "cars", "sop", "inshop"))
    cnv.add_argument("src", help="the folder the dataset's archive unpacks to (never downloaded)")
    cnv.add_argument("--out", required=True, help="the folder df.csv is written into, e.g. data/cub")
    cnv.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
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


MAX_PROBLEMS = 20  # check-data lists at most this many problems (each names up to 5 rows)


def _check_data(args: argparse.Namespace) -> int:
    """Every check that needs no training, every problem at once: the dataframe and its images, the
    batches params.yaml asks for against the labels there are, the model and the loss."""
    from reprokit.core.config import load_config
    from reprokit.data.dataframe import LABEL_MAP_KEY
    from reprokit.data.source import dataset_problems

    cfg = load_config(args.params)  # a config error stops here: the checks below read the config
    df, csv_path, problems = dataset_problems(cfg)
    problems += _model_problems(cfg, df)
    if problems or df is None:  # df is None only with a problem to report
        print("\n".join(problem_report(csv_path, problems)), file=sys.stderr)
        return 1
    train, val = df[df["split"] == "train"], df[df["split"] == "validation"]
    t = cfg.train
    line = (
        f"{csv_path}: ok ({len(df):,} rows: {len(train):,} train of {train['label'].nunique():,} labels, "
        f"{len(val):,} validation with {int(val['is_query'].sum()):,} queries; batches of {t.n_labels} labels x "
        f"{t.n_instances} instances fit; model {cfg.model.name} and loss {cfg.train.loss.name} build)"
    )
    mapping = df.attrs.get(LABEL_MAP_KEY)
    if mapping is not None:
        line += f"; {len(mapping):,} text labels numbered 0..{len(mapping) - 1} in sorted order (data.label_map: auto)"
    print(line)
    return 0


def problem_report(csv_path: Path, problems: list, limit: int = MAX_PROBLEMS) -> list[str]:
    """ "<csv>: N problems" then one numbered line per problem (its fix included), the first ``limit``."""
    lines = [f"{csv_path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
    lines += [f"  {i}. {problem.one_line()}" for i, problem in enumerate(problems[:limit], start=1)]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more: fix these, then run `reprokit check-data` again")
    return lines


def _model_problems(cfg, df) -> list:
    """The model (probed on a batch of the configured image size), then the loss, miner, optimiser,
    schedule and augmentation as train builds them (with the training labels for ``auto``)."""
    import torch

    from reprokit.core.errors import ReprokitError
    from reprokit.train.models import IMAGE_CHANNELS, build_model

    in_channels = IMAGE_CHANNELS[cfg.data.image_mode]
    try:
        build_model(cfg.model, in_channels, cfg.data.image_size)
    except ReprokitError as exc:
        return [exc]
    if df is None:  # the dataframe is unreadable: no training labels for `auto`, reported above
        return []
    from reprokit.train.embedding_module import EmbeddingModule

    classes = torch.tensor(df.loc[df["split"] == "train", "label"].to_numpy())
    try:
        EmbeddingModule(cfg.model, cfg.train, in_channels, cfg.data.image_size, classes=classes, seed=cfg.seed)
    except ReprokitError as exc:
        return [exc]
    return []


def _convert(args: argparse.Namespace) -> int:
    from reprokit.data.convert import convert, describe

    print(describe(convert(args.dataset, args.src, args.out)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from reprokit.provenance.compare import compare_runs, format_comparison, titles

    c = compare_runs(Path(args.repo), args.a, args.b, args.metric)
    print(format_comparison(c, args.limit))
    if args.html:
        from reprokit.visualize.compare_page import write_compare_page

        page = write_compare_page(
            Path(args.html),
            label_a=c.a.label,
            label_b=c.b.label,
            metric=c.metric,
            n_queries=c.n_queries,
            overall=c.overall,
            sections=list(zip(titles(c), (c.regressed, c.improved))),
            read_image=lambda path: c.a.image_bytes(path) or c.b.image_bytes(path),
        )
        print(f"compare: wrote {page}", file=sys.stderr)
    return 0


def _init(args: argparse.Namespace) -> int:
    from reprokit.project.init import describe, init_project

    print(describe(init_project(args.dir, force=args.force, code=tuple(args.code))))
    return 0


def _deps(args: argparse.Namespace) -> int:
    from reprokit.core.stage_deps import sync_deps

    lines, code = sync_deps(args.params, Path.cwd(), write=args.write)
    print("\n".join(lines))
    return code


def _sweep(args: argparse.Namespace) -> int:
    from reprokit.tune.command import sweep_command

    write_page: Callable[[Path, dict], Path] | None = None
    if args.html is not None:
        from reprokit.visualize.sweep_page import write_sweep_page as write_page
    return sweep_command(
        Path(args.file),
        jobs=args.jobs,
        storage=args.storage,
        trials=args.trials,
        show=args.show,
        promote=args.promote,
        html=args.html,
        write_page=write_page,
    )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    handlers = {
        "reproduce": _reproduce,
        "mirror": _mirror,
        "check-data": _check_data,
        "init": _init,
        "deps": _deps,
        "compare": _compare,
        "sweep": _sweep,
        "convert": _convert,
    }
    run_main(lambda: handlers[args.command](args), "reprokit", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
