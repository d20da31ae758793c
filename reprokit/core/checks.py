"""The building blocks of the config's one-line errors: "<key> must be <allowed>; got <value>"."""

from __future__ import annotations

from typing import Any

from reprokit.core.errors import ConfigError

__all__ = ["require", "at_least", "non_negative", "greater_than_zero", "ks", "path", "shown"]


def shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def require(ok: bool, key: str, allowed: str, value: Any, hint: str | None = None) -> None:
    """``ConfigError("<key> must be <allowed>; got <value>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key} must be {allowed}; got {shown(value)!r}", hint=hint)


def at_least(key: str, name: str, value: int, low: int) -> None:
    require(value >= low, f"{key}.{name}", f"an integer ≥ {low}", value)


def non_negative(key: str, name: str, value: float) -> None:
    require(value >= 0, f"{key}.{name}", "a number ≥ 0", value)


def greater_than_zero(key: str, name: str, value: float) -> None:
    require(value > 0, f"{key}.{name}", "a number > 0", value)


def ks(key: str, name: str, values: tuple[int, ...], non_empty: bool) -> None:
    what = ("a non-empty list" if non_empty else "a list") + " of distinct integers ≥ 1"
    ok = (bool(values) or not non_empty) and all(k >= 1 for k in values) and len(set(values)) == len(values)
    require(ok, f"{key}.{name}", what, values)


def path(key: str, name: str, value: str | None, nullable: bool) -> None:
    what = "null or a non-empty path" if nullable else "a non-empty path"
    require(value is None or value.strip() != "", f"{key}.{name}", what, value)
