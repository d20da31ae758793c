"""visualize: draw the worst queries (by visualize.metric) with their retrieved items."""

from __future__ import annotations

import sys
from pathlib import Path

from reprokit.core.config import load_config
from reprokit.core.layout import VisualizeDir
from reprokit.core.stage_runner import record_params, run_main, stage_parser
from reprokit.data.source import load_dataset, scored_rows
from reprokit.visualize.worst_queries import draw_worst_queries, read_per_query

# The params.yaml entries this stage reads: the same list as its `params` in dvc.yaml.
PARAMS = ("data", "validate.split", "visualize")


def run() -> None:
    parser = stage_parser("visualize", __doc__)
    parser.add_argument("--per-query", default="runs/validate/per_query.tsv")
    parser.add_argument("--out", default="runs/visualize")
    args = parser.parse_args()
    out = VisualizeDir(args.out)

    cfg = load_config(args.params)
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    val_df, val_paths = scored_rows(cfg, df, paths)  # the split validate scored: per_query.tsv indexes its rows
    n = draw_worst_queries(read_per_query(Path(args.per_query)), val_df, val_paths, cfg.visualize, out.worst_queries)
    record_params(out.params, cfg, PARAMS)
    print(f"visualize: {n} worst queries by {cfg.visualize.metric} -> {out.worst_queries}", file=sys.stderr)


def main() -> None:
    """The stage's entry point: errors become one line on stderr and exit code 1."""
    run_main(run, "visualize")
