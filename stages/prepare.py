"""prepare: generate the embedded default dataset (distorted digits) into data/digits/."""

from __future__ import annotations

import argparse
import sys

from reprokit.core.config import load_config
from reprokit.core.stage_runner import run_main
from reprokit.data.digits import generate_digits


def main() -> None:
    parser = argparse.ArgumentParser(prog="prepare", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    cfg = load_config(args.params)
    csv = generate_digits(cfg.data.digits, cfg.seed, cfg.data.digits.output)
    print(f"prepare: wrote {csv}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main, "prepare")
