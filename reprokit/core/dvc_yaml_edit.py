"""Adding and removing entries of a stage's ``deps`` in ``dvc.yaml``, line by line.

``dvc.yaml`` is the user's file, comments and layout included: it is never re-dumped. The lines are
found with a round-trip YAML parse (ruamel.yaml, which DVC itself uses) and edited as text, so
everything else stays byte for byte; the file is replaced atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reprokit.core.errors import ConfigError
from reprokit.core.fileio import write_text

__all__ = ["add_deps", "remove_deps", "raw_deps", "template_deps", "MARK"]

MARK = "# added by reprokit deps"
TEMPLATE = re.compile(r"\$\{\s*([A-Za-z_][\w.-]*)\s*\}")


def _load(path: Path) -> tuple[list[str], Any]:
    # Imported here: importing ruamel.yaml adds warnings filters, and a stage (it only reads
    # dvc.yaml) must change no global state by importing reprokit.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    text = path.read_text()
    try:
        return text.splitlines(keepends=True), YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc


def _stage(doc: Any, path: Path, name: str) -> Any:
    stage = ((doc or {}).get("stages") or {}).get(name)
    if stage is None:
        raise ConfigError(f"{path} has no stage {name!r}")
    return stage.get("do", stage)  # a foreach stage: its template


def raw_deps(path: Path) -> dict[str, list[str]]:
    """Each stage's deps as written (``${...}`` not rendered); a dict-form dep by its path."""
    _, doc = _load(path)
    found = {}
    for name, stage in ((doc or {}).get("stages") or {}).items():
        deps = (stage.get("do", stage) or {}).get("deps") or []
        found[name] = [str(next(iter(d))) if isinstance(d, dict) else str(d) for d in deps]
    return found


def template_deps(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each stage's deps that are one ``${key}``, as (dep, key) (``${item}`` of a foreach left out)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name, deps in raw_deps(path).items():
        for dep in deps:
            match = TEMPLATE.fullmatch(dep.strip())
            if match and match.group(1) != "item":
                found.setdefault(name, []).append((dep, match.group(1)))
    return found


def _end_of_item(lines: list[str], line: int, indent: int) -> int:
    """The index after the sequence item that starts at ``line`` (its continuation lines included)."""
    i = line + 1
    while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent:
        i += 1
    return i


def add_deps(path: Path, additions: dict[str, list[str]], comment: str = MARK) -> list[tuple[str, str]]:
    """Append each entry to its stage's deps (those already listed are skipped); returns what was added."""
    lines, doc = _load(path)
    inserts: list[tuple[int, str]] = []
    added = []
    for name, entries in additions.items():
        stage = _stage(doc, path, name)
        deps = stage.get("deps")
        if not deps:
            raise ConfigError(
                f"{path}: stage {name!r} has no deps list to add to",
                hint=f"add `deps:` with {', '.join(repr('- ' + e) for e in entries)} under stages.{name} by hand",
            )
        present = {str(next(iter(d))) if isinstance(d, dict) else str(d) for d in deps}
        line = deps.lc.item(len(deps) - 1)[0]  # the last item's line
        text = lines[line]
        if not text.lstrip().startswith("-"):  # a flow list, `deps: [a, b]`
            raise ConfigError(
                f"{path}: stage {name!r} lists its deps on one line; reprokit adds lines to a block list only",
                hint=f"add {', '.join(repr('- ' + e) for e in entries)} under stages.{name}.deps by hand",
            )
        dash = len(text) - len(text.lstrip())
        at = _end_of_item(lines, line, dash)
        for entry in entries:
            if entry in present:
                continue
            present.add(entry)
            inserts.append((at, f"{' ' * dash}- {entry}  {comment}\n"))
            added.append((name, entry))
    for at, text in sorted(inserts, key=lambda x: x[0], reverse=True):
        if at > 0 and not lines[at - 1].endswith("\n"):
            lines[at - 1] += "\n"
        lines.insert(at, text)
    if added:
        write_text(path, "".join(lines))
    return added


def remove_deps(path: Path, removals: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Remove the deps listed (as written) from their stages; returns what was removed."""
    lines, doc = _load(path)
    drop: set[int] = set()
    removed = []
    for name, entries in removals.items():
        deps: Any = _stage(doc, path, name).get("deps") or []  # ruamel's CommentedSeq (its .lc: line numbers)
        for i, dep in enumerate(deps):
            if isinstance(dep, str) and dep in entries:
                drop.add(deps.lc.item(i)[0])
                removed.append((name, dep))
    if drop:
        write_text(path, "".join(line for i, line in enumerate(lines) if i not in drop))
    return removed
