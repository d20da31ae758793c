"""Reading a dataframe CSV as text, cell by cell, with the file line each row starts on."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from reprokit.core.errors import DataFrameError
from reprokit.data.problems import Problems

__all__ = ["read_csv", "one_line", "count_rows", "FORMAT_HINT"]

FORMAT_HINT = (
    "the OML format needs columns label, path, split, is_query, is_gallery "
    "(optional: category, sequence, x_1, x_2, y_1, y_2)"
)


def count_rows(positions) -> str:
    return "1 row" if len(positions) == 1 else f"{len(positions)} rows"


def _blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def read_csv(csv_path: Path) -> tuple[pd.DataFrame, list[int]]:
    # The csv module rather than pandas: pandas silently drops extra fields (index_col=False) or
    # turns them into an index, and pads short rows; a row with the wrong number of fields is a
    # broken file and must be reported with its row number.
    records: list[list[str]] = []
    lines: list[int] = []  # the file line each record starts on
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            done = 0
            for rec in reader:
                start, done = done + 1, reader.line_num
                if not _blank(rec):
                    records.append(rec)
                    lines.append(start)
    except FileNotFoundError:
        raise DataFrameError(f"{csv_path}: file not found", hint="check data.dataframe in params.yaml") from None
    except UnicodeDecodeError as exc:
        msg = f"{csv_path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        raise DataFrameError(msg, hint="save the dataframe as a UTF-8 CSV") from None
    except (csv.Error, OSError) as exc:
        raise DataFrameError(
            f"{csv_path}: cannot be parsed as CSV: {one_line(str(exc))}",
            hint="check the quoting and delimiters (a comma-separated file with a header row is expected)",
        ) from None
    if not records:
        raise DataFrameError(f"{csv_path}: the file is empty (no header, no rows)", hint=FORMAT_HINT)
    header, rows = records[0], records[1:]
    bad = [i for i, rec in enumerate(rows) if len(rec) != len(header)]
    if bad:
        raise DataFrameError(
            f"{csv_path}: cannot be parsed as CSV: {count_rows(bad)} without the header's "
            f"{len(header)} fields: {Problems(lines=lines[1:]).listing(bad, [f'{len(rows[i])} fields' for i in bad])}",
            hint="check the delimiters and quoting of those rows (a field containing a comma must be quoted)",
        )
    return pd.DataFrame(rows, columns=header), lines[1:]


def one_line(text: str) -> str:
    return " ".join(text.split())
