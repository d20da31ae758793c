"""Tab-separated tables with a header (the format `dvc plots` reads), written deterministically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reprokit.core.fileio import write_text

__all__ = ["write_table", "read_table"]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip repr: byte-identical for identical floats
    return str(value)


def write_table(path: Path, first: list[str], rows: list[dict[str, Any]]) -> None:
    keys = sorted({k for row in rows for k in row} - set(first))
    header = first + keys
    lines = ["\t".join(header)]
    lines += ["\t".join(_fmt(row.get(k)) for k in header) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def read_table(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        row: dict[str, Any] = {}
        for k, v in zip(header, line.split("\t")):
            if v != "":
                row[k] = int(v) if k in ("step", "epoch") else float(v)
        rows.append(row)
    return rows
