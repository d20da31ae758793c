"""prepare: generate the embedded default dataset (distorted digits) into data/digits/."""

from __future__ import annotations

import sys

from reprokit.core.config import load_config
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.data.digits import generate_digits


def run() -> None:
    parser = stage_parser("prepare", __doc__)
    parser.add_argument("--dataset", choices=["digits"], default="digits", help="the embedded dataset to generate")
    args = parser.parse_args()
    cfg = load_config(args.params)
    csv = generate_digits(cfg.data.digits, cfg.seed, cfg.data.digits.output)
    print(f"prepare: wrote {csv}", file=sys.stderr)


def main() -> None:
    """The stage's entry point: errors become one line on stderr and exit code 1."""
    run_main(run, "prepare")
