"""Running a stage entry point: its common arguments, the params it used, one clear line on error."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.config import Config, lookup, redact, set_dotted
from reprokit.core.console import quiet_third_party
from reprokit.core.errors import ConfigError, ReprokitError
from reprokit.core.fileio import write_text
from reprokit.core.layout import PARAMS_FILE

__all__ = ["run_main", "debug_enabled", "stage_parser", "record_params", "REPRODUCING_ENV", "reproducing"]

# Set by `reprokit reproduce` for the stages it re-runs: a reproduction must not publish to the team's tracker.
REPRODUCING_ENV = "REPROKIT_REPRODUCING"


def reproducing() -> bool:
    return os.environ.get(REPRODUCING_ENV, "") not in ("", "0")


def debug_enabled(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    return "--verbose" in argv or os.environ.get("REPROKIT_DEBUG", "") not in ("", "0")


def stage_parser(prog: str, description: str | None, **paths: str | Path) -> argparse.ArgumentParser:
    """The arguments every stage takes: ``--params`` (the config file) and ``--verbose`` (tracebacks).

    Each keyword of ``paths`` adds a path option, ``per_query=...`` becoming ``--per-query``, whose
    default the caller takes from :mod:`reprokit.core.layout`, so a stage never spells a run path.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--params", default=PARAMS_FILE, help=f"the config file (default {PARAMS_FILE})")
    parser.add_argument("--verbose", action="store_true", help="print a traceback on error")
    for name, default in paths.items():
        default = Path(default).as_posix()
        parser.add_argument(f"--{name.replace('_', '-')}", default=default, help=f"(default {default})")
    return parser


def record_params(path: str | Path, cfg: Config, keys: Iterable[str] | None) -> Path:
    """Write the params.yaml entries a stage read (dotted ``keys``, as its dvc.yaml ``params``; None: all), redacted.

    The mirror builds a pipeline run's identity and the params its logger run shows from these
    records, so a stage that re-runs alone (say validate, with another distance) makes a new run.
    """
    full = cfg.to_dict()
    picked: dict[str, Any] = {}
    for key in full if keys is None else keys:
        value = lookup(full, key, missing=...)
        if value is ...:
            raise ConfigError(
                f"params key {key!r} (listed under the stage's params in dvc.yaml) is not a key of {PARAMS_FILE}",
                hint="remove it from the stage's params, or fix its spelling",
            )
        set_dotted(picked, key, value)
    return write_text(path, yaml.safe_dump(redact(picked), sort_keys=True))


def run_main(main: Callable[[], int | None], prog: str, argv: list[str] | None = None) -> None:
    """Call ``main``; turn reprokit errors into one line on stderr, exit 1.

    Third-party chatter (Lightning's info lines, known library deprecation warnings) is hidden
    while ``main`` runs, unless ``--verbose`` (in ``argv``, the arguments ``main`` parses; None:
    ``sys.argv``) or ``REPROKIT_DEBUG=1`` asks for everything.
    """
    # A stage is a short-lived process that has imported torch and Lightning (about a million
    # objects): freezing them keeps the collector from walking them again during the run and when
    # the interpreter exits, which is a second of every train stage. Nothing is lost by it: frozen
    # objects are still freed by reference counting, and the process ends right after.
    gc.freeze()
    try:
        with quiet_third_party(enabled=not debug_enabled(argv)):
            code = main()
    except ReprokitError as exc:
        if debug_enabled(argv):
            traceback.print_exc()
        print(f"{prog}: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    gc.freeze()  # what the run made: the exit's last collections need not walk it either
    sys.exit(code or 0)
