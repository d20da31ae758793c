"""Secrets (API tokens): which keys hold one, and replacing their values wherever text leaves the process."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["scrub", "one_line", "is_secret_key", "secret_values", "redact", "REDACTED", "SECRET_PATTERNS"]

SECRET_PATTERNS = ("*token*", "*key*", "*secret*", "*password*")
REDACTED = "***REDACTED***"

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


def is_secret_key(key: str) -> bool:
    name = str(key).lower()
    return any(fnmatch.fnmatch(name, pat) for pat in SECRET_PATTERNS)


def secret_values(data: Any) -> list[str]:
    """The non-empty values stored under secret-looking keys, for scrubbing them from any text."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if is_secret_key(k) and v not in (None, "") and not isinstance(v, (dict, list)):
                found.append(str(v))
            else:
                found.extend(secret_values(v))
    elif isinstance(data, list):
        for v in data:
            found.extend(secret_values(v))
    return found


def redact(data: Any) -> Any:
    """A copy of ``data`` where values under secret-looking keys are replaced."""
    if isinstance(data, dict):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
