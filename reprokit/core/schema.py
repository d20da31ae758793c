"""A tiny typed loader: plain YAML mappings -> frozen dataclasses, strictly.

Every unknown key is rejected with the list of valid ones, every wrong type names the dotted
key, the value received and the type expected. A typo must never run with a default silently.
Numbers are finite float32 values (YAML's ``.nan``/``.inf`` are rejected), mapping keys of ``dict[str, ...]``
fields are strings. Ranges and cross-key rules live in each dataclass's ``check(key)``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from reprokit.core.errors import ConfigError

__all__ = ["load_dataclass", "to_plain", "FLOAT32_MAX"]

FLOAT32_MAX = 3.4028234663852886e38


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        item = get_args(tp)[0]
        plural = {int: "integers", float: "numbers", str: "strings"}.get(item, _type_name(item))
        return f"a list of {plural}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    plain = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return plain.get(tp, getattr(tp, "__name__", str(tp)))


def _number_text_hint(text: str) -> str | None:
    """For a string that YAML left unparsed but that holds a finite number: how to write it."""
    try:
        if not math.isfinite(float(text)):
            return None
    except ValueError:
        return None
    if re.fullmatch(r"\s*[+-]?\d+[eE][+-]?\d+\s*", text):
        return f"YAML 1.1 reads an exponent without a dot as text: write e.g. {float(text):.1e} or {float(text):g}"
    return "write the number without quotes"


def _convert_float(value: Any, key: str) -> float:
    """An int or float that a float32 holds, as a float; a one-line error (with a hint for a number
    written as text) for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number; got {value!r}")
        if abs(number) > FLOAT32_MAX:  # tensors, optimisers and loss terms hold it as a float32
            raise ConfigError(f"{key} must be a number of magnitude ≤ {FLOAT32_MAX:.1e} (float32); got {value!r}")
        return number
    hint = _number_text_hint(value) if isinstance(value, str) else None
    if hint:
        raise ConfigError(f"{key} must be a number; got the string {value!r}", hint=hint)
    raise ConfigError(f"{key} must be {_type_name(float)}; got {value!r}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key} must be {_type_name(tp)}; got {value!r}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None  # null is null, even where a block (which reads null as {}) comes first in the union
        options = [o for o in get_args(tp) if o is not type(None)]
        if options == [float] and value is not None:  # an optional number: the number's own error and hint
            return _convert_float(value, key)
        block_error = None
        for option in get_args(tp):
            try:
                return _convert(value, option, key)
            except ConfigError as exc:
                # A mapping given for an optional block (``Block | None``): the block's own error names
                # the key inside it ("model.head.dim must be ..."), which "must be a mapping or null" would hide.
                if isinstance(value, dict) and dataclasses.is_dataclass(option) and block_error is None:
                    block_error = exc
        if block_error is not None:
            raise block_error
        raise ConfigError(f"{key} must be {_type_name(tp)}; got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} must be null; got {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return load_dataclass(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be {_type_name(tp)}; got {value!r}")
        item_tp = get_args(tp)[0]
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping; got {value!r}")
        key_tp = get_args(tp)[0] if get_args(tp) else Any
        if key_tp is str:
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise ConfigError(f"{key} keys must be strings; got {bad[0]!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        return _convert_float(value, key)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported schema type {tp!r} at {key}")
    raise ConfigError(f"{key} must be {_type_name(tp)}; got {value!r}")


def load_dataclass(cls: type, data: Any, key: str = "") -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    where = key or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping; got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        bad = f"{key}.{unknown[0]}" if key else str(unknown[0])
        raise ConfigError(f"unknown key {bad!r} in {where}; valid keys: {', '.join(fields)}")
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{key}.{name}" if key else name)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(key)
    return obj


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples -> plain dicts/lists, for YAML/JSON output."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
