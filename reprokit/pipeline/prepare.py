"""prepare: generate the embedded default dataset (distorted digits) into data/digits/."""

from __future__ import annotations

from reprokit.core.config import Config, load_config
from reprokit.core.console import summary
from reprokit.core.stage_runner import run_main, stage_parser
from reprokit.data.digits import generate_digits

__all__ = ["run", "main"]


def run(cfg: Config) -> None:
    """The stage's work: write ``data.digits.output`` (images and df.csv) from ``cfg``."""
    d = cfg.data.digits
    csv = generate_digits(d, cfg.seed, d.output)
    _, n_val = d.split_sizes()
    summary(
        "prepare",
        f"{d.n_labels() * d.views:,} images of {d.n_labels():,} labels ({n_val:,} for validation)",
        csv.parent,
        f"{csv.name}, images/",
    )


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        parser = stage_parser("prepare", __doc__)
        parser.add_argument("--dataset", choices=["digits"], default="digits", help="the embedded dataset to generate")
        args = parser.parse_args(argv)
        run(load_config(args.params))

    run_main(stage, "prepare", argv)
