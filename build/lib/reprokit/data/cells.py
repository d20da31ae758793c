"""Parsing one dataframe cell: missing, integer, boolean; and quoting a cell in a message.

The parsers return :data:`INVALID` (not an exception) for a value of the wrong kind, so the
dataframe checker can collect every offending row before it reports.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["INVALID", "is_missing", "to_int", "to_bool", "show"]

_NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>"})
_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
INVALID = object()  # a parser's "not a valid value" (None means missing)


def is_missing(v: Any, na_tokens: bool = True) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    if isinstance(v, str):
        s = v.strip()
        return s == "" or (na_tokens and s.lower() in _NA_TOKENS)
    return False


def to_int(v: Any) -> Any:
    """The int64 value of ``v``, or ``INVALID``; callers handle missing values first."""
    if isinstance(v, (bool, np.bool_)):
        return INVALID  # True is not a label
    if isinstance(v, (int, np.integer)):
        x = int(v)
    elif isinstance(v, (float, np.floating)):
        if not (math.isfinite(v) and float(v).is_integer()):
            return INVALID
        x = int(v)
    elif isinstance(v, str):
        s = v.strip()
        if _INT_RE.fullmatch(s):
            if len(s) > 21:  # beyond int64 anyway; spares int() a megabyte-long digit string
                return INVALID
            x = int(s)
        elif _NUMBER_RE.fullmatch(s):  # "3.0", "1e3": exact via Decimal (a float would round)
            try:  # an exponent beyond Decimal's range raises InvalidOperation
                d = Decimal(s)
                if d.adjusted() > 19 or d != d.to_integral_value():
                    return INVALID
            except InvalidOperation:
                return INVALID
            x = int(d)
        else:
            return INVALID
    else:
        return INVALID
    return x if _INT64_MIN <= x <= _INT64_MAX else INVALID


def to_bool(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    x = to_int(v)
    return bool(x) if x is not INVALID and x in (0, 1) else INVALID


def show(v: Any) -> str:
    """A value as it appears in a one-line message: quoted, escaped, short."""
    if is_missing(v, na_tokens=False):
        return "(empty)"
    if isinstance(v, np.generic):
        v = v.item()
    text = repr(v)  # repr escapes newlines, so the message stays on one line
    return text if len(text) <= 60 else text[:57] + "..."
