"""The project's import graph, read from the source with ``ast`` (lazy imports inside functions included).

Walking the source rather than ``sys.modules`` after an import means an import that only runs on
some path (a backend chosen at run time, an error branch) is still seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reprokit", "stages")


def module_file(module: str) -> Path | None:
    """The file of a project module (``reprokit.core.config`` -> reprokit/core/config.py), or None."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(module: str) -> list[Path]:
    """``import a.b.c`` also runs a/__init__.py and a/b/__init__.py."""
    parts = module.split(".")
    inits = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    return [p for p in inits if p.is_file()]


def direct_imports(path: Path) -> set[Path]:
    """Project files that ``path`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            f = module_file(name)
            if f is not None:
                found.add(f)
                found.update(_package_inits(name))
    found.discard(path)
    return found


def imported_closure(module: str) -> set[Path]:
    """Every project file that running ``python -m module`` can import."""
    start = module_file(module)
    assert start is not None, module
    return file_closure(start, *_package_inits(module))


def file_closure(*starts: Path) -> set[Path]:
    """``starts`` and every project file they import, directly or not."""
    seen = set(starts)
    todo = list(seen)
    while todo:
        current = todo.pop()
        if current == ROOT / "reprokit" / "__init__.py":
            continue  # its imports run only when user code asks for reprokit.LightningModule & co.
        for dep in direct_imports(current):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def runs_nothing(path: Path) -> bool:
    """An empty or docstring-only file (a package's __init__): no dependency worth tracking."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def layer_of(path: Path) -> str:
    """reprokit/core/config.py -> 'reprokit/core'; stages/x.py -> 'stages'; reprokit/cli.py -> itself.

    reprokit/pipeline/ (one module per stage) is one unit too, like every layer: a column of
    `dvc exp show` per stage module cost more readability than re-running the stages after an
    edit there (in this repository only: a project's dvc.yaml has no reprokit/ dependencies).
    """
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "reprokit" and len(rel.parts) > 2:
        return "/".join(rel.parts[:2])
    if rel.parts[0] == "stages":  # the entry points are one layer, a dependency of every stage
        return "stages"
    return rel.as_posix()
