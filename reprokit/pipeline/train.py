"""train: fit the embedding model; write runs/train/ (model, loss statistics, curves, artifacts).

While it trains, the configured logger receives every value live, into the training's own logger
run (``reprokit.mirror.live``; the mirror stage completes that run later), and every
``train.validate_every_n_epochs`` epochs the split validate scores (``validate.split``) is scored
with validate's engine (``reprokit.evaluate.scoring_in_training``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from reprokit.core.config import Config, load_config
from reprokit.core.console import summary
from reprokit.core.fileio import read_json, remove_outputs, replace_dir, staging_dir_in, write_json
from reprokit.core.layout import RunsDir, TrainDir
from reprokit.core.stage_deps import recorded_inputs, require_stage_deps
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.core.tables import read_table
from reprokit.data.labels import LABEL_MAP_FILE, LABEL_MAP_KEY, write_label_map
from reprokit.data.source import load_dataset
from reprokit.evaluate.scoring_in_training import TrainingValidator
from reprokit.mirror.live import LiveMirror, open_live
from reprokit.provenance.artifacts import warn_untracked_imports, write_run_artifacts
from reprokit.train.loop import is_rank_zero, new_run_identity, resume_dir, train
from reprokit.train.pruning import sweep_pruning_hook

__all__ = ["run", "main"]

_RUNS = RunsDir()  # the project's run folder: the paths' defaults


@contextlib.contextmanager
def staged_artifacts(out: TrainDir, cfg, csv_path: Path, project_dir: Path, label_map=None) -> Iterator[None]:
    """Capture the provenance (code, git state, config, dataframe hash, the label numbering of
    ``data.label_map: auto``) before the first step, so an edit made during a long run is never
    recorded as the code that ran; publish it only once training has finished, so a failed run
    leaves no artifacts behind."""
    if not is_rank_zero():
        yield
        return
    staging = staging_dir_in(out.root, ".artifacts-")
    try:
        write_run_artifacts(cfg, csv_path, project_dir, staging)
        if label_map is not None:
            write_label_map(staging / LABEL_MAP_FILE, label_map)
        yield
        replace_dir(staging, out.artifacts)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_identity(cfg: Config) -> dict[str, str]:
    """This training's id and name; with ``train.resume``, those of the run it resumes (kept beside
    its checkpoint), so a resumed training continues the same logger run."""
    fresh = new_run_identity(os.environ.get("DVC_EXP_NAME"))
    if not cfg.train.resume:
        return fresh
    # beside the checkpoint, as a training folder keeps it
    kept = TrainDir(resume_dir(cfg.seed, cfg.data, cfg.model, cfg.train, cfg.trainer)).identity
    if kept.is_file():
        return {k: str(v) for k, v in read_json(kept).items() if k in ("run_id", "run_name")}
    if is_rank_zero():
        write_json(kept, fresh)
    return fresh


@contextlib.contextmanager
def live_logging(cfg: Config, identity: dict[str, str]) -> Iterator[LiveMirror | None]:
    """The live mirror of this training (rank zero; None when the logger has no live writer),
    closed when training ends, within ``logger.timeout_s``."""
    live = open_live(cfg.logger, identity["run_id"], identity["run_name"]) if is_rank_zero() else None
    finished = False
    try:
        yield live
        finished = True
    finally:
        if live is not None:
            live.close(finished, cfg.logger.timeout_s)


def run(cfg: Config, *, out: str | Path = _RUNS.train.root) -> None:
    """The stage's work: train on ``cfg``, writing the run folder ``out``. A `reprokit sweep` trial
    (its environment names the study) reports each validation to the study's pruner, which may stop it."""
    started_at = time.time()
    # The files it reads (code named in params.yaml and what it imports, weights, the dataframe), by
    # content hash as they were at the start (main's dependency check found them): `reprokit
    # reproduce` names any that a revision lacks.
    inputs = recorded_inputs(cfg.to_dict(), "train")
    out_dir = TrainDir(out)
    df, paths, csv_path = load_dataset(cfg)  # every data check before any compute
    remove_outputs(
        out_dir.metrics,
        out_dir.identity,
        out_dir.plots,
        out_dir.wall_times,
        out_dir.images,
        out_dir.texts,
        out_dir.artifacts,
    )
    identity = run_identity(cfg)
    validator = TrainingValidator(cfg, df, paths) if cfg.train.validate_every_n_epochs > 0 else None
    # A `reprokit sweep` trial: its pruner is asked after each validation (rank zero only).
    pruning = sweep_pruning_hook() if validator is not None and is_rank_zero() else None
    with (
        live_logging(cfg, identity) as live,
        staged_artifacts(out_dir, cfg, csv_path, Path.cwd(), df.attrs.get(LABEL_MAP_KEY)),
    ):
        sink = live.send if live is not None else None
        hooks = [pruning] if pruning is not None else []
        stats, is_global_zero = train(cfg, df, paths, out_dir.root, validator=validator, on_validation=hooks, live=sink)
        if pruning is not None:
            pruning.raise_if_pruned()  # a pruned trial: the stage fails, no run.json, metrics.json or artifacts
    if not is_global_zero:
        return  # under DDP, rank zero alone writes
    warn_untracked_imports(Path.cwd())
    write_json(
        out_dir.identity,
        {**identity, "started_at": round(started_at, 3), "finished_at": round(time.time(), 3), "inputs": inputs},
    )
    # Last: metrics.json exists only for a finished run.
    write_json(out_dir.metrics, stats)
    shown = [f"{k}={v:.4f}" for k, v in stats.items() if isinstance(v, float)]
    best = stats.get("best")
    if isinstance(best, dict):
        shown += [f"best epoch {best['epoch']} ({', '.join(f'{k}={v:.4f}' for k, v in best.items() if k != 'epoch')})"]
    else:
        shown += _last_validation(out_dir, cfg.train.monitor)
    summary(
        "train",
        f"{', '.join(shown)} after {cfg.train.epochs} epochs",
        out_dir.root,
        f"{out_dir.model.name}, {out_dir.metrics.name}, {out_dir.plots.name}/, {out_dir.artifacts.name}/",
    )


def _last_validation(out: TrainDir, metric: str) -> list[str]:
    """``val/map@5=0.7498`` of the last epoch validated while training (nothing when none was)."""
    rows = read_table(out.validation_table) if out.validation_table.is_file() else []
    key = f"val/{metric}"
    return [f"{key}={rows[-1][key]:.4f}"] if rows and key in rows[-1] else []


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        args = stage_parser("train", __doc__, out=_RUNS.train.root).parse_args(argv)
        # First, before any work: every file it will read is a DVC dependency, or it refuses (one line).
        require_stage_deps("train", args.params, hash_inputs=True)
        run(load_config(args.params), out=args.out)

    run_main(stage, "train", argv)
