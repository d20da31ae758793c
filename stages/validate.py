"""validate: embed the validation split; write retrieval metrics, per-query table, CMC curve."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from reprokit.core.config import load_config
from reprokit.core.fileio import remove_outputs
from reprokit.core.stage_runner import run_main
from reprokit.data.source import load_dataset
from reprokit.evaluate.validation import (
    embed,
    embed_distributed,
    score,
    validation_inputs,
    wants_distributed,
    write_validation,
)
from reprokit.train.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(prog="validate", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="runs/train/model.ckpt")
    parser.add_argument("--out", default="runs/validate")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    cfg = load_config(args.params)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    df, paths, _ = load_dataset(cfg)
    out = Path(args.out)
    remove_outputs(out / "metrics.json", out / "baseline.json", out / "plots")
    model, _ = load_model(Path(args.model))
    val_df, images = validation_inputs(cfg, df, paths)
    if wants_distributed(cfg.trainer):
        embeddings, is_global_zero = embed_distributed(cfg, model, images)
        if not is_global_zero:
            return  # rank zero scores once and writes
    else:
        embeddings = embed(model, images, cfg.validate.batch_size)
    res = score(cfg, val_df, embeddings)
    # The raw-pixel baseline on the same split shows what the trained model adds.
    baseline = score(cfg, val_df, images.flatten(1), show_progress=False)
    write_validation(out, res, val_df, baseline)


if __name__ == "__main__":
    run_main(main, "validate")
