"""``reprokit init [DIR]``: write a working reprokit pipeline into an existing git repository.

The files come from ``reprokit/project/templates/`` inside the installed package (never from a
checkout of reprokit): ``dvc.yaml``, a commented ``params.yaml`` with every key at its default,
the thin stage entry points under ``stages/``, ``models.py`` (the model ``params.yaml`` names,
yours to edit) and ignore entries. The generated project runs on the embedded digits dataset as
it is; pointing ``data.*`` at your own data and ``model.*`` at your own network is an edit of
``params.yaml``.

Your code folder (``src/`` when the repository has one, or the folders named with ``--code``) is
listed as a dependency of train, validate and visualize beside ``models.py``, so a model or loss
of yours there re-runs them when it changes; ``reprokit deps --write`` adds anything else later.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from reprokit.core.dvc_yaml_edit import add_deps
from reprokit.core.errors import ReprokitError
from reprokit.core.fileio import write_text
from reprokit.core.git import git_toplevel
from reprokit.core.layout import PARAMS_FILE

__all__ = ["init_project", "InitReport", "TEMPLATE_FILES", "IGNORES"]

# Template file -> where it goes in the project.
# (dvc.yaml is stored as dvc.yaml.tmpl: DVC would take a dvc.yaml anywhere in the repository for a pipeline.)
TEMPLATE_FILES = {
    "dvc.yaml.tmpl": "dvc.yaml",
    PARAMS_FILE: PARAMS_FILE,
    "models.py": "models.py",
    "stages/__init__.py": "stages/__init__.py",
    "stages/prepare.py": "stages/prepare.py",
    "stages/train.py": "stages/train.py",
    "stages/validate.py": "stages/validate.py",
    "stages/visualize.py": "stages/visualize.py",
    "stages/report.py": "stages/report.py",
    "stages/mirror.py": "stages/mirror.py",
}
# Lines each ignore file must hold (appended when missing, never duplicated).
IGNORES = {
    ".gitignore": ["__pycache__/", "/logs/", "/mlruns/", "/.reprokit/", "/dvc_plots/"],
    ".dvcignore": ["__pycache__/", "*.pyc"],
}
# The stages that import the user's code (the model, the loss): a code folder is a dependency of each.
CODE_STAGES = ("train", "validate", "visualize")
DEFAULT_CODE_DIR = "src"  # listed when the repository already has it


class InitError(ReprokitError):
    """``reprokit init`` cannot write the project where it was asked to."""


@dataclass
class InitReport:
    root: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # existing files left alone (no --force)
    updated: list[str] = field(default_factory=list)  # ignore files that gained lines
    code_dirs: list[str] = field(default_factory=list)  # folders listed as deps of the code stages
    dvc_initialised: bool = False


def template_text(name: str) -> str:
    return resources.files("reprokit.project").joinpath("templates", name).read_text(encoding="utf-8")


def _require_git_repo(root: Path) -> None:
    if git_toplevel(root) is None:
        raise InitError(
            f"{root} is not inside a git repository: reprokit versions every run with git",
            hint=f"run `git init {root}` (and commit something) first, then `reprokit init`",
        )


def _add_ignore_lines(path: Path, lines: list[str]) -> bool:
    existing = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in lines if line not in existing]
    if missing:
        text = "\n".join(existing) + ("\n" if existing else "")
        write_text(path, text + "# reprokit\n" + "\n".join(missing) + "\n")
    return bool(missing)


def _dvc_init(root: Path) -> None:
    dvc = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if dvc is None:
        raise InitError("the `dvc` command is not installed beside this Python", hint='pip install "reprokit"')
    proc = subprocess.run([dvc, "init", "-q"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InitError(f"`dvc init` failed in {root}: {' '.join(proc.stderr.split())}")


def _code_dirs(root: Path, code: tuple[str, ...]) -> list[str]:
    """The folders to list: those asked for (a missing one is made a package: ``<dir>/__init__.py``),
    else ``src/`` when it exists."""
    if not code:
        return [DEFAULT_CODE_DIR] if (root / DEFAULT_CODE_DIR).is_dir() else []
    found = []
    for name in code:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise InitError(f"--code {name!r}: a folder inside the repository, relative to it (e.g. src or mypkg)")
        folder = root / rel
        if folder.exists() and not folder.is_dir():
            raise InitError(f"--code {name!r}: {folder} exists and is not a folder")
        if not folder.exists():
            doc = f"{rel.name}: your project's code (a dependency of train, validate and visualize)."
            write_text(folder / "__init__.py", f'"""{doc}"""\n')
        found.append(rel.as_posix())
    return found


def init_project(directory: str | Path = ".", force: bool = False, code: tuple[str, ...] = ()) -> InitReport:
    """Write the pipeline files into ``directory`` (a git repository); never overwrite without ``force``.
    ``code``: project folders listed as dependencies of the stages that import your code."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise InitError(f"{root} is not a folder", hint="create it and run `git init` there first")
    _require_git_repo(root)
    report = InitReport(root)
    for name, rel in TEMPLATE_FILES.items():
        target = root / rel
        if target.exists() and not force:
            report.kept.append(rel)
            continue
        write_text(target, template_text(name))
        report.written.append(rel)
    if "dvc.yaml" in report.written or code:
        report.code_dirs = _code_dirs(root, tuple(code))
        if report.code_dirs:
            add_deps(root / "dvc.yaml", {stage: report.code_dirs for stage in CODE_STAGES}, comment="# your code")
    for rel, lines in IGNORES.items():
        if _add_ignore_lines(root / rel, lines):
            report.updated.append(rel)
    if not (root / ".dvc").is_dir():
        _dvc_init(root)
        report.dvc_initialised = True
    return report


def describe(report: InitReport) -> str:
    """What init did and the next three commands, for the terminal."""
    lines = [f"reprokit init: {report.root}"]
    lines += [f"  wrote   {rel}" for rel in report.written]
    lines += [f"  kept    {rel} (exists; --force overwrites it)" for rel in report.kept]
    lines += [f"  updated {rel}" for rel in report.updated]
    lines += [f"  listed  {d}/ as a dependency of {', '.join(CODE_STAGES)} (dvc.yaml)" for d in report.code_dirs]
    if report.dvc_initialised:
        lines.append("  ran     dvc init")
    lines += [
        "",
        "next:",
        "  dvc repro                           # the pipeline on the embedded digits dataset (a few minutes)",
        "  git add -A && git commit -m 'reprokit pipeline'",
        "  dvc exp show                        # then point data.* in params.yaml at your own data",
        "  reprokit deps --write               # after naming your own model/loss module or weights in params.yaml",
    ]
    return "\n".join(lines)
