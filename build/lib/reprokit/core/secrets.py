"""Replacing literal secret values (API tokens) wherever text leaves the process: files, reports, messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from reprokit.core.config import REDACTED

__all__ = ["scrub", "one_line"]

T = TypeVar("T", str, bytes)


def scrub(data: T, secrets: Iterable[str]) -> T:
    """``data`` with every non-empty value of ``secrets`` replaced by the redaction mark."""
    for value in secrets:
        if not value:
            continue
        if isinstance(data, bytes):
            data = data.replace(value.encode(), REDACTED.encode())
        else:
            data = data.replace(value, REDACTED)
    return data


def one_line(text: object, secrets: Iterable[str] = (), limit: int | None = None) -> str:
    """``text`` scrubbed and folded to one line, cut to ``limit`` characters (verbose client errors)."""
    folded = scrub(" ".join(str(text).split()), secrets)
    if limit is not None and len(folded) > limit:
        folded = folded[: limit - 3] + "..."
    return folded
