"""The console a person reads: one summary line per stage, no third-party chatter.

A default run shows, per stage, DVC's own lines, the progress bars and one line of reprokit's
saying what the stage wrote and where to look. Lightning's informational lines ("GPU available:
False ...", its "💡 Tip" advertisements, "`Trainer.fit` stopped: ...") and known deprecation
warnings of the libraries underneath say nothing a user can act on; they are hidden inside
:func:`quiet_third_party` only, which the stage runner wraps around a stage (``--verbose`` or
``REPROKIT_DEBUG=1`` shows everything). Nothing is changed at import time, and everything is
restored on exit: a library's logger levels and the warnings filters are the caller's again.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["quiet_third_party", "summary", "shown_path", "QUIET_LOGGERS", "QUIET_WARNINGS"]

# Lightning's own loggers: its import sets the parents to INFO, the rank-zero ones inherit that.
# The rank-zero loggers are named too, so that a Lightning module imported inside the context
# (Fabric, in validate under DDP), whose import resets its parent's level, stays quiet.
QUIET_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
# (message regex, category) of warnings that come from library internals, not from the user's code.
QUIET_WARNINGS = (
    # torch 2.13 deprecates LeafSpec, which Lightning 2.6's _pytree helper still builds at every step.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


@contextlib.contextmanager
def quiet_third_party(enabled: bool = True) -> Iterator[None]:
    """Within: Lightning's informational lines and the known library warnings are not shown.

    Warnings (level WARNING and above) of Lightning still are: they may concern the user's setup.
    """
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for message, category in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.WARNING))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it (what a person types)."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return p.as_posix()
    return rel.as_posix() or "."


def summary(stage: str, what: str, where: str | Path | None = None, look: str | None = None) -> str:
    """Print the stage's one line, ``<stage>: <what> -> <where> (<look>)``, on stderr (beside
    DVC's own lines and the progress bars); return it."""
    line = f"{stage}: {what}"
    if where is not None:
        line += f" -> {shown_path(where) if isinstance(where, Path) else where}"
    if look:
        line += f" ({look})"
    print(line, file=sys.stderr, flush=True)
    return line
