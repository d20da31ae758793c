"""The project files a module runs when it is imported: itself, its packages' ``__init__.py`` and,
transitively, every project module it imports — found by reading the source (``ast``), never by
importing it.

Reading rather than importing means the check at a stage's start runs no user code (no second
import, no random draw before the seed), and an import that only runs on some path (inside a
function, under ``try``) is seen too. What it cannot see: a module name computed at run time
(``importlib.import_module(name)`` with a variable); a literal ``import_module("pkg.mod")`` is seen.

A *project file* lies inside the project folder and outside any virtual environment or installed
packages (the provenance snapshot's rule, :func:`project_relative`). reprokit's own package is not
followed: it is the code running the stage, identified by its version in ``env.json`` (and, in
reprokit's own repository, by the layer folders ``tests/unit/test_dvc_yaml.py`` checks).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

__all__ = ["project_relative", "ProjectModule", "find_module", "imported_files"]

# Folders that hold installed code, not the project's: a venv inside the project is not its code.
INSTALLED_PARTS = frozenset({".venv", "venv", "site-packages", "dist-packages", "__pypackages__"})
_OWN_PACKAGE = Path(os.path.abspath(__file__)).parents[1]  # reprokit/


def project_relative(path: str | Path, project_dir: Path) -> str | None:
    """``path`` relative to ``project_dir`` (posix) when it is a project file, else None.

    Symbolic links are kept as the path names them (a ``models.py`` that links into a template is
    ``models.py``: what DVC hashes and what the user edits), only ``project_dir`` is resolved.
    """
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(project_dir.resolve())
    except ValueError:
        try:
            rel = absolute.relative_to(os.path.abspath(project_dir))
        except ValueError:
            return None
    if INSTALLED_PARTS & set(rel.parts):
        return None
    return rel.as_posix()


def _own(path: Path) -> bool:
    try:
        # Not resolved: the repository's models.py links into reprokit/project/templates/ and is the project's.
        Path(os.path.abspath(path)).relative_to(_OWN_PACKAGE)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ProjectModule:
    name: str  # dotted module name
    path: Path  # its file: name.py, or name/__init__.py for a package
    is_package: bool


def _search_roots(project_dir: Path) -> list[Path]:
    """Where a top-level name is looked up: the project folder (a stage runs `python -m` there, so it
    is first on sys.path), then sys.path entries inside the project (a `src/` layout's editable install)."""
    roots = [project_dir]
    for entry in sys.path:
        if entry and project_relative(entry, project_dir) is not None and Path(entry).is_dir():
            path = Path(os.path.abspath(entry))
            if path not in roots:
                roots.append(path)
    return roots


def _in_folder(folder: Path, name: str, dotted: str) -> ProjectModule | None:
    if (folder / name / "__init__.py").is_file():
        return ProjectModule(dotted, folder / name / "__init__.py", True)
    if (folder / f"{name}.py").is_file():
        return ProjectModule(dotted, folder / f"{name}.py", False)
    return None


def _top_level(name: str, project_dir: Path) -> ProjectModule | None:
    for root in _search_roots(project_dir):
        found = _in_folder(root, name, name)
        if found is not None:
            return found
    # An editable install served by an import hook (setuptools' finders): ask the import system
    # where the name lives, without importing it (a top-level name has no parent package to run).
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    if spec is None or not origin or not Path(origin).is_file():
        return None
    return ProjectModule(name, Path(origin), spec.submodule_search_locations is not None)


def find_module(name: str, project_dir: Path) -> list[ProjectModule]:
    """The files importing ``name`` runs, parents first (``a/__init__.py``, ``a/b.py``), when ``name``
    is a project module; [] when it is not one (a library, or a name that does not exist)."""
    parts = name.split(".")
    top = _top_level(parts[0], project_dir)
    if top is None or project_relative(top.path, project_dir) is None or _own(top.path):
        return []
    chain = [top]
    for i, part in enumerate(parts[1:], start=1):
        if not chain[-1].is_package:
            return []
        found = _in_folder(chain[-1].path.parent, part, ".".join(parts[: i + 1]))
        if found is None:
            return []
        chain.append(found)
    return chain


def _imported_names(module: ProjectModule) -> set[str]:
    """Every module name ``module``'s source imports, anywhere in its body (relative imports resolved)."""
    try:
        tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    except (OSError, SyntaxError, ValueError):
        return set()  # importing it will fail with the real error, in the stage, naming the file
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - node.level + 1] if node.level <= len(package) else []
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            if base:
                names.add(base)
                # `from pkg import mod`: mod may be a module of pkg (or just a name it defines).
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _is_import_call(node):
            # _is_import_call checked that the first argument is a string constant.
            names.add(cast(str, cast(ast.Constant, node.args[0]).value))
    return names


def _is_import_call(node: ast.Call) -> bool:
    """``importlib.import_module("literal")``, ``import_module("literal")`` or ``__import__("literal")``."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return (
        called in ("import_module", "__import__")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and not node.args[0].value.startswith(".")
    )


def imported_files(names: list[str], project_dir: Path) -> dict[str, list[str]]:
    """For each module name, the project files its import runs (itself, its packages, what they
    import, transitively), relative to ``project_dir``; a name that is no project module maps to []."""
    found: dict[str, list[str]] = {}
    for name in names:
        seen: dict[Path, ProjectModule] = {}
        todo = find_module(name, project_dir)
        while todo:
            module = todo.pop()
            if module.path in seen:
                continue
            seen[module.path] = module
            for imported in sorted(_imported_names(module)):
                todo.extend(m for m in find_module(imported, project_dir) if m.path not in seen)
        found[name] = sorted({rel for p in seen if (rel := project_relative(p, project_dir)) is not None})
    return found
