"""docs/reference/params.md: every params.yaml key, from the schema's dataclasses.

For each key: the type and the default (from the dataclass), the values it allows (a ``Literal``'s
values, and the range its section's ``check`` states, in the words a wrong value's error prints),
and what the source's comments say about it. A block of keys gets a section of its own, and so
does each built-in's ``args`` (a component's ``builtins``: MODEL_ARGS, LOSS_ARGS).
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from typing import Any, Literal, Union

import yaml

from docs.generate.markdown import anchor, code, escape, notice, page, paragraphs, table
from docs.generate.source import class_doc, field_comment


def _union(tp: Any) -> tuple[Any, ...] | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else None


def block_of(tp: Any) -> tuple[type, str] | None:
    """(dataclass, how the key holds it: 'block', 'optional' or 'list') when a key holds a block of keys."""
    if dataclasses.is_dataclass(tp):
        return typing.cast(type, tp), "block"
    members = _union(tp)
    if members and type(None) in members:
        rest = [m for m in members if m is not type(None)]
        if len(rest) == 1 and dataclasses.is_dataclass(rest[0]):
            return rest[0], "optional"
    if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return typing.get_args(tp)[0], "list"
    return None


def type_name(tp: Any) -> str:
    """A key's type as YAML sees it: int, float, str, bool, null, list of …, mapping."""
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    members = _union(tp)
    if members:
        return " or ".join(dict.fromkeys(type_name(m) for m in members))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(dict.fromkeys(type(v).__name__ for v in typing.get_args(tp)))
    if origin is tuple:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def literal_values(tp: Any) -> list[Any]:
    """The values a ``Literal`` in the type allows (with null where the type is optional; a list's items')."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return list(typing.get_args(tp))
    if origin is tuple:
        return literal_values(typing.get_args(tp)[0])
    members = _union(tp)
    if members:
        values = [v for m in members if m is not type(None) for v in literal_values(m)]
        return values + [None] if values and type(None) in members else values
    return []


def yaml_value(value: Any) -> str:
    """A value as params.yaml writes it, on one line."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


def stated_ranges(cls: type, prefix: str) -> dict[str, list[str]]:
    """The rules a section's ``check`` states for its own keys ({key: ["an integer in [16, 256]", ...]}).

    ``check`` states each rule as ``require(ok, key, allowed, value)`` (reprokit.core.checks): running it on
    the section's defaults with ``require`` recording instead of raising yields every rule's key and words,
    the very words a wrong value's error prints. A rule inside a branch the defaults do not take is not seen;
    rules that tie a key to another section's keys are left to the error messages (they depend on both).
    """
    from reprokit.core import checks
    from reprokit.core.errors import ConfigError

    real = checks.require
    seen: dict[str, list[str]] = {}

    def record(ok: bool, key: str, allowed: str, value: Any, hint: str | None = None) -> None:
        seen.setdefault(key, []).append(allowed)

    # ``require`` is imported under other names (``_require``) by the modules that check: swap every binding.
    bound = [
        (module, name)
        for module in list(sys.modules.values())
        if getattr(module, "__name__", "").startswith("reprokit.") or module is sys.modules.get(cls.__module__)
        for name, value in list(vars(module).items())
        if value is real
    ]
    for module, name in bound:
        setattr(module, name, record)
    try:
        cls().check(prefix)
    except ConfigError:
        pass  # a rule written as its own `raise`: its words stay in the error message
    finally:
        for module, name in bound:
            setattr(module, name, real)
    return {k: list(dict.fromkeys(v)) for k, v in seen.items() if k.rpartition(".")[0] == prefix}


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return code(yaml_value(f.default))
    if f.default_factory is not dataclasses.MISSING:
        return code(yaml_value(f.default_factory()))
    return ""  # a required key


@dataclasses.dataclass
class _Section:
    key: str
    title: str
    intro: str
    rows: list[tuple[str, ...]]


_HOLDS = {"block": "mapping", "optional": "null or mapping", "list": "list of mappings"}
_INTRO = {
    "block": "",
    "optional": "When `{key}` is set (its default is null), it holds these keys.",
    "list": "`{key}` is a list; each entry holds these keys.",
}


def _walk(cls: type, prefix: str, title: str, intro: str, sections: list[_Section]) -> None:
    """A section per block of keys, depth first: its own keys, then its blocks, then a built-in's args."""
    section = _Section(prefix, title, "\n\n".join(p for p in (intro, class_doc(cls) or "") if p), [])
    sections.append(section)
    hints = typing.get_type_hints(cls)
    ranges = stated_ranges(cls, prefix)
    blocks = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        block = block_of(tp)
        default = "" if block is not None and block[1] == "block" else _default(f)  # a block's: its keys' defaults
        if block is None:
            kind = escape(type_name(tp))
        else:
            sub_key = f"{key}[]" if block[1] == "list" else key
            kind = f"{_HOLDS[block[1]]}, [keys below](#{anchor(sub_key)})"
            blocks.append((block[0], sub_key, _INTRO[block[1]].format(key=key)))
        allowed = [code(yaml_value(v)) for v in literal_values(tp)]
        allowed += [escape(rule) for rule in ranges.get(key, [])]
        section.rows.append((code(key), kind, default, "; ".join(allowed), escape(field_comment(cls, f.name))))
    for sub_cls, sub_key, sub_intro in blocks:
        _walk(sub_cls, sub_key, f"`{sub_key}`", sub_intro, sections)
    for name, args_cls in getattr(cls, "builtins", {}).items():
        args_key = f"{prefix}.args"
        intro = f"With `{prefix}.name: {name}`; checked like a section, missing keys filled with their defaults."
        _walk(args_cls, args_key, f"`{args_key}` of the built-in `{name}`", intro, sections)
        sections[-1].key = f"{args_key}-{name}"


def params_page() -> str:
    from reprokit.core.config import Config

    sections: list[_Section] = []
    _walk(Config, "", "Top level", "", sections)
    out = [
        "# `params.yaml` keys\n\n",
        notice("the schema's dataclasses (reprokit/core/config.py and the sections it puts together)"),
        (
            "Every key `params.yaml` accepts: its type, its default (what a missing key means), what it allows, and "
            "what the code's comments say about it. An unknown key, a wrong type or a value out of range stops a stage "
            "with one line naming the key, the value received and what is allowed; `reprokit check-data` runs every "
            "such check without training. Rules that tie keys of two sections together (a batch that fits the labels "
            "there are, `visualize.metric` among the metrics validate computes) are stated by the error itself.\n\n"
            "Keys nest: `train.loss.args.margin` is written\n\n"
            "```yaml\ntrain:\n  loss:\n    args:\n      margin: 0.5\n```\n\n"
            "and changed for one experiment with `dvc exp run -S train.loss.args.margin=0.3`.\n\n"
        ),
    ]
    header = ("key", "type", "default", "allowed", "what it does")
    for s in sections:
        out.append(f"## {s.title} {{#{anchor(s.key) or 'top-level'}}}\n\n")
        out.append(paragraphs(s.intro))
        out.append(table(header, s.rows))
    return page(*out)
