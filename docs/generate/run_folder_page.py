"""docs/reference/run-folder.md: every path under runs/, from reprokit/core/layout.py.

The layout declares each file once, as a class attribute with its reason beside it; a folder's
class docstring says what the folder holds. This repository's dvc.yaml says how each path is
declared (an output, metrics, a plot) and which stages read it: both columns come from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from docs.generate.markdown import ROOT, anchor, code, escape, notice, page, paragraphs, table
from docs.generate.source import assignment, class_doc, class_node, statement_comment

_KIND = {"outs": "output", "metrics": "metrics", "plots": "plot"}


def dvc_declarations(dvc_yaml: Path = ROOT / "dvc.yaml") -> tuple[dict[str, str], dict[str, list[str]]]:
    """How each path is declared ({path: 'metrics of `train`, ...'}) and which stages read it ({path: [stage]})."""
    spec = yaml.safe_load(dvc_yaml.read_text())
    declared: dict[str, str] = {}
    readers: dict[str, list[str]] = {}
    for stage, body in spec["stages"].items():
        body = body.get("do", body)  # a foreach stage: its template
        for kind, what in _KIND.items():
            for entry in body.get(kind, []):
                path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
                cached = "" if (opts or {}).get("cache", True) else ", not cached: git tracks it"
                declared[path] = f"{what} of `{stage}`{cached}"
        for dep in body.get("deps", []):
            readers.setdefault(dep, []).append(stage)
    return declared, readers


def _declared(path: str, declared: dict[str, str]) -> str:
    if path in declared:
        return declared[path]
    for parent in Path(path).parents:
        if parent.as_posix() in declared:
            return f"in `{parent.as_posix()}/`, {declared[parent.as_posix()]}"
    if any(p.startswith(path + "/") for p in declared):
        return "its files, each declared"
    return "not declared"


def _readers(path: str, readers: dict[str, list[str]]) -> str:
    found = [s for p in (path, *(q.as_posix() for q in Path(path).parents)) for s in readers.get(p, [])]
    return ", ".join(f"`{s}`" for s in dict.fromkeys(found))


def is_folder(value: Any) -> bool:
    """A layout folder (``TrainDir(...)``): its ``root`` is a Path (a Path's own ``root`` is a str)."""
    return isinstance(getattr(value, "root", None), Path)


def folder_rows(folder: Any, declared: dict[str, str], readers: dict[str, list[str]]) -> tuple[list, list]:
    """A row per path the folder's class declares, in declaration order; the folders its properties return."""
    rows, nested = [], []
    cls = type(folder)
    node, source = class_node(cls)
    for name, attr in vars(cls).items():
        if hasattr(attr, "relative"):  # a layout entry: a path below the folder
            path = getattr(folder, name).as_posix()
            stmt = assignment(node, name)
            why = statement_comment(stmt, node.body, source) if stmt is not None else ""
            what = " ".join(p for p in (attr.__doc__ or "", why) if p)
            shown = Path(path).relative_to(folder.root).as_posix()  # the heading names the folder
            rows.append((code(shown), code(name), escape(what), _declared(path, declared), _readers(path, readers)))
        elif isinstance(attr, property) and is_folder(inner := attr.fget(folder)):
            nested.append((inner, f"{cls.__name__}.{name}"))
    return rows, nested


def run_folder_page() -> str:
    from reprokit.core import layout

    declared, readers = dvc_declarations()
    out = [
        "# The run folder\n\n",
        notice("reprokit/core/layout.py and this repository's dvc.yaml"),
        (
            f"Every path a stage writes under `{layout.RUNS_ROOT}/`. `reprokit.core.layout` owns these names: the stages, "
            "the run-folder logger and the mirror's reader all build their paths from it (the attribute column names "
            "a path there: `RunsDir().train.model` is `runs/train/model.ckpt`). The last two columns say how this "
            "repository's `dvc.yaml` declares each path and which stages read it (a stage that lists a folder reads "
            "everything in it).\n\n"
        ),
    ]
    header = ("file", "attribute", "what", "in dvc.yaml", "read by")
    todo = [(folder, f"RunsDir().{name}") for name, folder in vars(layout.RunsDir()).items() if is_folder(folder)]
    while todo:
        folder, where = todo.pop(0)
        rows, nested = folder_rows(folder, declared, readers)
        rel = folder.root.as_posix()
        out.append(f"## `{rel}/` {{#{anchor(rel)}}}\n\n")
        out.append(paragraphs(class_doc(type(folder))))
        out.append(f"In code: `{where}`, a `{type(folder).__name__}`.\n\n")
        out.append(table(header, rows))
        todo[0:0] = nested
    return page(*out)
