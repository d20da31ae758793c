"""YAML read strictly: a key given twice is an error, exponent numbers are floats, failures are one line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.errors import ConfigError

__all__ = ["StrictLoader", "read_yaml"]


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not "last wins")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: explicit keys override it
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


# `dvc exp run -S train.lr=0.00005` writes the value back as Python prints it, `5e-05`: a float in
# YAML 1.2 (and to DVC), a string to YAML 1.1. Read such exponent numbers as the floats they are.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file read strictly (a key given twice is an error); every failure is one ConfigError line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {str(path)!r} not found", hint="run from the project root")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
