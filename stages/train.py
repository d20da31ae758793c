"""train: fit the embedding model; write runs/train/ (model, loss statistics, curves, artifacts)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reprokit.core.config import load_config
from reprokit.core.fileio import remove_outputs, write_json
from reprokit.core.stage_runner import run_main
from reprokit.data.source import load_dataset
from reprokit.provenance.artifacts import warn_untracked_imports, write_run_artifacts
from reprokit.train.loop import new_run_identity, train


def main() -> None:
    parser = argparse.ArgumentParser(prog="train", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="runs/train")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)

    cfg = load_config(args.params)
    df, paths, csv_path = load_dataset(cfg)  # every data check before any compute
    remove_outputs(out / "metrics.json", out / "run.json", out / "plots", out / "images", out / "text")
    stats, is_global_zero = train(cfg, df, paths, out)
    if not is_global_zero:
        return  # under DDP, rank zero alone writes
    write_run_artifacts(cfg, csv_path, Path.cwd(), out / "artifacts")
    warn_untracked_imports(Path.cwd())
    write_json(out / "run.json", new_run_identity(os.environ.get("DVC_EXP_NAME")))
    # Last: metrics.json exists only for a finished run.
    write_json(out / "metrics.json", stats)
    print(f"train: {', '.join(f'{k}={v:.4f}' for k, v in stats.items())}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main, "train")
