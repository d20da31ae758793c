"""train: fit the embedding model; write runs/train/ (model, loss statistics, curves, artifacts)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from reprokit.core.config import load_config
from reprokit.core.console import summary
from reprokit.core.fileio import remove_outputs, replace_dir, staging_dir_in, write_json
from reprokit.core.layout import TrainDir
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.data.labels import LABEL_MAP_FILE, LABEL_MAP_KEY, write_label_map
from reprokit.data.source import load_dataset
from reprokit.provenance.artifacts import warn_untracked_imports, write_run_artifacts
from reprokit.train.loop import is_rank_zero, new_run_identity, train


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


def run() -> None:
    parser = stage_parser("train", __doc__)
    parser.add_argument("--out", default="runs/train")
    args = parser.parse_args()
    out = TrainDir(args.out)
    started_at = time.time()

    cfg = load_config(args.params)
    df, paths, csv_path = load_dataset(cfg)  # every data check before any compute
    remove_outputs(out.metrics, out.identity, out.plots, out.images, out.texts, out.artifacts)
    with staged_artifacts(out, cfg, csv_path, Path.cwd(), df.attrs.get(LABEL_MAP_KEY)):
        stats, is_global_zero = train(cfg, df, paths, out.root)
    if not is_global_zero:
        return  # under DDP, rank zero alone writes
    warn_untracked_imports(Path.cwd())
    write_json(out.identity, new_run_identity(os.environ.get("DVC_EXP_NAME"), started_at, time.time()))
    # Last: metrics.json exists only for a finished run.
    write_json(out.metrics, stats)
    summary("train", f"{', '.join(f'{k}={v:.4f}' for k, v in stats.items())} after {cfg.train.epochs} epochs",
            out.root, f"{out.model.name}, {out.metrics.name}, {out.plots.name}/, {out.artifacts.name}/")


def main() -> None:
    """The stage's entry point: errors become one line on stderr and exit code 1."""
    run_main(run, "train")
