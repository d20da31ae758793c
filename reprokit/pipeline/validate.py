"""validate: embed the validation split; write retrieval metrics, per-query table, CMC curve."""

from __future__ import annotations

from pathlib import Path

import torch

from reprokit.core.config import Config, load_config
from reprokit.core.console import summary
from reprokit.core.fileio import remove_outputs
from reprokit.core.layout import RunsDir, ValidateDir
from reprokit.core.stage_deps import require_stage_deps
from reprokit.core.stage_runner import record_params, run_main, stage_parser
from reprokit.data.source import load_dataset
from reprokit.evaluate.scoring import (
    baseline_pixels,
    embed,
    embed_distributed,
    embedding_device,
    score,
    validation_inputs,
    wants_distributed,
    write_validation,
)
from reprokit.train.checkpoint import load_model

# The params.yaml entries this stage reads: the same list as its `params` in dvc.yaml.
PARAMS = ("seed", "data", "validate", "visualize.top_k", "trainer")

__all__ = ["run", "main", "PARAMS"]

_RUNS = RunsDir()  # the project's run folder: the paths' defaults


def run(cfg: Config, *, model: str | Path = _RUNS.train.model, out: str | Path = _RUNS.validate.root) -> None:
    """The stage's work: score the checkpoint ``model`` on the split ``cfg.validate.split`` names,
    writing the run folder ``out``."""
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    df, paths, _ = load_dataset(cfg)
    out_dir = ValidateDir(out)
    remove_outputs(out_dir.metrics, out_dir.by_category, out_dir.baseline, out_dir.plots, out_dir.params)
    embedder, _ = load_model(Path(model))
    device = embedding_device(cfg.trainer)
    val_df, images = validation_inputs(cfg, df, paths)  # decoded batch by batch, never all at once
    # The raw-pixel baseline on the same split shows what the trained model adds; its pixels are
    # kept, within a bounded memory, as the embedding pass decodes them.
    pixels = baseline_pixels(cfg.validate, images)
    distributed = wants_distributed(cfg.trainer)
    if distributed:
        embeddings, is_global_zero = embed_distributed(cfg, embedder, images, pixels)
    else:
        v = cfg.validate
        embeddings = embed(
            embedder.to(device), images, v.batch_size, num_workers=v.num_workers, seed=cfg.seed, pixels=pixels
        )
    # The search and metrics run on the embeddings' device; under DDP each rank searches its share
    # of the queries and rank zero alone writes.
    res = score(cfg, val_df, embeddings, show_progress=not distributed or is_global_zero, distributed=distributed)
    if distributed and not is_global_zero:
        return
    baseline = score(cfg, val_df, pixels.matrix, show_progress=False, extra_metrics=False)
    metrics = write_validation(out_dir.root, res, val_df, baseline)
    record_params(out_dir.params, cfg, PARAMS)
    scores = ", ".join(f"{k}={v:.4f}" for k, v in metrics["overall"].items())
    skipped = metrics["n_queries_without_gt"]
    queries = f"{metrics['n_queries']:,} queries" + (f", {skipped:,} without ground truth left out" if skipped else "")
    raw = baseline.overall.get("cmc@1")
    summary(
        "validate",
        f"{scores} ({queries}" + (f"; raw pixels cmc@1={raw:.4f})" if raw is not None else ")"),
        out_dir.root,
        f"{out_dir.metrics.name}, {out_dir.by_category.name}, {out_dir.per_query.name}",
    )


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        args = stage_parser("validate", __doc__, model=_RUNS.train.model, out=_RUNS.validate.root).parse_args(argv)
        require_stage_deps("validate", args.params)  # first: every file it reads is a DVC dependency
        run(load_config(args.params), model=args.model, out=args.out)

    run_main(stage, "validate", argv)
