"""Reading a benchmark's official files from the folder its archive unpacks to.

Every problem is one :class:`ConvertError` line naming the file (and line) it is about and what
was expected there: a missing file names the file the layout needs, a malformed row quotes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from reprokit.core.errors import ReprokitError

__all__ = ["ConvertError", "find_file", "read_rows", "to_int", "to_float", "check_counted", "missing_images"]


class ConvertError(ReprokitError):
    """`reprokit convert`: the source folder is not in the dataset's official layout, or a list in it is malformed."""


def find_file(src: Path, dataset: str, candidates: Sequence[str], unpacks: str) -> Path:
    """The first of ``candidates`` (paths relative to ``src``) that exists; else one line naming the file.

    ``unpacks`` says what the expected folder is ("the folder CUB_200_2011.tgz unpacks to"). A user
    who passed the folder above it is told which subfolder to pass instead.
    """
    for name in candidates:
        if (src / name).is_file():
            return src / name
    expected = candidates[0]
    if not src.is_dir():
        raise ConvertError(
            f"{dataset}: source folder {str(src)!r} does not exist", hint=f"pass {unpacks}, the one holding {expected}"
        )
    below = sorted(p.parent for p in src.glob(f"*/{expected}") if p.is_file())
    hint = (
        f"found it in {str(below[0])!r}: pass that folder"
        if below
        else f"pass {unpacks}, the one holding {expected}; reprokit never downloads datasets"
    )
    also = f" (nor {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
    raise ConvertError(f"{dataset}: {str(src / expected)!r} not found{also}", hint=hint)


def read_rows(
    path: Path, fields: Sequence[str], skip: int = 0, last_may_have_spaces: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line after the first ``skip`` lines, split on whitespace.

    A line with another number of fields is one error quoting it and the format. With
    ``last_may_have_spaces`` the last field takes the rest of the line (a file name).
    """
    n = len(fields)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if number <= skip or not line.strip():
                continue
            parts = line.split(None, n - 1) if last_may_have_spaces else line.split()
            parts = [p.strip() for p in parts]
            if len(parts) != n:
                raise ConvertError(
                    f"{path.name} line {number}: expected {n} fields '{' '.join(f'<{f}>' for f in fields)}', "
                    f"got {line.strip()[:120]!r}",
                    hint=f"{path.name} is read as the dataset's archive ships it; restore the original file",
                )
            yield number, parts


def to_int(value: str, path: Path, line: int, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and number.is_integer():
            return int(number)
        raise ConvertError(f"{path.name} line {line}: {field} must be an integer; got {value!r}") from None


def to_float(value: str, path: Path, line: int, field: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConvertError(f"{path.name} line {line}: {field} must be a number; got {value!r}") from None


def check_counted(path: Path, rows: list, header_count: str) -> None:
    """DeepFashion's lists start with the number of rows that follow: a truncated file is caught here."""
    try:
        declared = int(header_count)
    except ValueError:
        raise ConvertError(f"{path.name} line 1: expected the number of images, got {header_count!r}") from None
    if declared != len(rows):
        raise ConvertError(
            f"{path.name}: line 1 says {declared:,} images but {len(rows):,} rows follow",
            hint="the file is truncated or edited; restore it from the dataset's archive",
        )


def missing_images(src: Path, paths: Sequence[str]) -> tuple[int, str | None]:
    """(how many of ``paths`` are not files under ``src``, the first of them)."""
    base = os.fspath(src)  # os.path, not pathlib: a third of the time on SOP's 120,053 images
    missing = [p for p in paths if not os.path.isfile(os.path.join(base, p))]
    return len(missing), (missing[0] if missing else None)
