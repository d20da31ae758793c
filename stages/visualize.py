"""visualize: draw the worst queries (by visualize.metric) with their retrieved items."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reprokit.config import load_config
from reprokit.dataset_source import load_dataset
from reprokit.stage_runner import run_main
from reprokit.viz import draw_worst_queries, read_per_query


def main() -> None:
    parser = argparse.ArgumentParser(prog="visualize", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--per-query", default="runs/validate/per_query.tsv")
    parser.add_argument("--out", default="runs/visualize/worst_queries.png")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    cfg = load_config(args.params)
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    is_val = (df["split"] == "validation").to_numpy()
    val_df = df[is_val].reset_index(drop=True)
    val_paths = [p for p, keep in zip(paths, is_val) if keep]
    n = draw_worst_queries(read_per_query(Path(args.per_query)), val_df, val_paths, cfg.visualize, Path(args.out))
    print(f"visualize: {n} worst queries by {cfg.visualize.metric} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main, "visualize")
