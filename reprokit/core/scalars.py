"""The scalars a logger receives, and the tags the train stage's curves travel under.

One owner for both sides: the run-folder logger names the values it sends live while training
with these functions, and the mirror's reader names the same values read back from
``runs/train/plots/*.tsv`` with them too, so a value that arrived live and its replay are the same
(tag, step) and a backend can tell one from the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reprokit.core.fileio import write_text

__all__ = ["Scalar", "step_tag", "epoch_tag", "read_wall_times", "write_wall_times", "WallTimes"]

# ("step", step) or ("epoch", epoch) -> Unix seconds at which that row of step.tsv / epoch.tsv was logged.
WallTimes = dict[tuple[str, int], float]


@dataclass(frozen=True)
class Scalar:
    tag: str
    step: int
    value: float
    # Unix seconds at which the value was produced (recorded during training); None: unknown, the
    # backend stamps it when it receives it.
    wall_time: float | None = None


def step_tag(column: str) -> str:
    """The tag of a ``plots/step.tsv`` column: ``train/<column>``; a column already named with a
    namespace (``val/cmc@1``) keeps its name."""
    return column if "/" in column else f"train/{column}"


def epoch_tag(column: str) -> str:
    """The tag of a ``plots/epoch.tsv`` column: ``train_epoch/<column>``; a column of
    ``plots/validation.tsv`` (``val/cmc@1``: validation while training) keeps its name."""
    return column if "/" in column else f"train_epoch/{column}"


def write_wall_times(path: Path, times: WallTimes) -> None:
    """``runs/train/wall_times.tsv``: ``table  key  wall_time``, one line per logged row, sorted."""
    lines = ["table\tkey\twall_time"] + [f"{t}\t{k}\t{w!r}" for (t, k), w in sorted(times.items())]
    write_text(path, "\n".join(lines) + "\n")


def read_wall_times(path: Path) -> WallTimes:
    """The file :func:`write_wall_times` writes; a malformed line raises ValueError naming it."""
    out: WallTimes = {}
    for n, line in enumerate(path.read_text().splitlines()[1:], start=2):
        try:
            table, key, wall = line.split("\t")
            if table not in ("step", "epoch"):
                raise ValueError(table)
            out[(table, int(key))] = float(wall)
        except ValueError:
            raise ValueError(f"{path}:{n}: expected 'step|epoch<TAB>integer<TAB>seconds'; got {line!r}") from None
    return out
