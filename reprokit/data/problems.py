"""How the dataframe checks report: at the first problem (a stage), or every problem (``check-data``).

A stage stops at the first problem, the root cause, with one line. ``reprokit check-data`` wants
every problem in one go: the same checks, run with ``collect=True``, record each problem and go
on with what can still be checked (a check that needs a broken column is skipped, not misled).
Messages name rows as data rows (row 1 = the first row after the header) and, for a CSV, the
file lines they are on, which differ from ``row + 1`` after blank lines or multi-line fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from reprokit.core.errors import DataFrameError

__all__ = ["Problems", "SHOWN"]

SHOWN = 5  # offending rows quoted in a message


class _Stop(Exception):
    """A problem after which nothing else can be checked (no header, no rows): unwinds to the collector."""


class Problems:
    """Raise the first problem (``collect=False``) or record them all, with ``lines[i]`` the file
    line of data row ``i`` (0-based) when the frame came from a CSV."""

    def __init__(self, collect: bool = False, lines: Sequence[int] | None = None) -> None:
        self.collect = collect
        self.lines = list(lines) if lines is not None else None
        self.found: list[DataFrameError] = []
        self.broken: set[str] = set()  # columns with a problem: checks that need them are skipped

    def listing(self, positions: Sequence[int], shown: Sequence[str]) -> str:
        """'row 3 = '1.5', row 7 = 'a' and 4 more (lines 4, 8 of the CSV file)' (positions 0-based)."""
        parts = [f"row {p + 1} = {s}" for p, s in zip(positions[:SHOWN], shown[:SHOWN])]
        more = len(positions) - SHOWN
        text = ", ".join(parts) + (f" and {more} more" if more > 0 else "")
        if self.lines is not None and positions:
            lines = [str(self.lines[p]) for p in positions[:SHOWN]]
            text += f" ({'line' if len(lines) == 1 else 'lines'} {', '.join(lines)} of the CSV file)"
        return text

    def fail(
        self,
        column: str,
        problem: str,
        positions: Sequence[int],
        shown: Sequence[str],
        hint: str,
        broken: str | None = None,
    ) -> None:
        """ "column 'label': 2 rows with <problem>: row 3 = '1.5', row 7 = 'a'" (+ hint); ``broken``
        names the column later checks must not rely on."""
        subject = f"column {column}" if column.startswith("'") else column
        count = "1 row" if len(positions) == 1 else f"{len(positions)} rows"
        self.add(DataFrameError(f"{subject}: {count} {problem}: {self.listing(positions, shown)}", hint=hint), broken)

    def add(self, error: DataFrameError, broken: str | None = None) -> None:
        if not self.collect:
            raise error
        self.found.append(error)
        if broken:
            self.broken.add(broken)

    def stop(self, error: DataFrameError) -> None:
        """A problem that ends the checking (raised in either mode; the collector records it)."""
        if not self.collect:
            raise error
        self.found.append(error)
        raise _Stop

    def ok(self, *columns: str) -> bool:
        """Whether none of ``columns`` had a problem (checks needing them can run)."""
        return not self.broken.intersection(columns)

    Stop = _Stop
