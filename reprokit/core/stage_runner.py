"""Running a stage entry point: one clear line on error, a traceback only when asked for."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from reprokit.core.errors import ReprokitError

__all__ = ["run_main", "debug_enabled"]


def debug_enabled(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    return "--verbose" in argv or os.environ.get("REPROKIT_DEBUG", "") not in ("", "0")


def run_main(main: Callable[[], int | None], prog: str) -> None:
    """Call ``main``; turn reprokit errors into one line on stderr, exit 1."""
    try:
        code = main()
    except ReprokitError as exc:
        if debug_enabled():
            traceback.print_exc()
        print(f"{prog}: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
