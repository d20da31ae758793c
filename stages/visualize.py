"""visualize: draw the worst queries (by visualize.metric) with their retrieved items."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reprokit.core.config import load_config
from reprokit.core.stage_runner import run_main
from reprokit.data.source import load_dataset, split_rows
from reprokit.visualize.worst_queries import draw_worst_queries, read_per_query


def main() -> None:
    parser = argparse.ArgumentParser(prog="visualize", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--per-query", default="runs/validate/per_query.tsv")
    parser.add_argument("--out", default="runs/visualize/worst_queries.png")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    cfg = load_config(args.params)
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    val_df, val_paths = split_rows(df, paths, "validation")
    n = draw_worst_queries(read_per_query(Path(args.per_query)), val_df, val_paths, cfg.visualize, Path(args.out))
    print(f"visualize: {n} worst queries by {cfg.visualize.metric} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main, "visualize")
