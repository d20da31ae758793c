"""What git says about the code a run used: commit, branch, dirty flag, tracked files, diff."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["GitState", "git_state", "git", "run_git", "git_toplevel", "excluded", "exp_refs"]


def run_git(args: list[str], cwd: str | Path, binary: bool = False) -> subprocess.CompletedProcess:
    """``git ARGS`` in ``cwd``, output captured (bytes with ``binary``); the caller reads the exit code."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=not binary)


def git(args: list[str], cwd: str | Path, check: bool = True) -> str:
    """The stdout of ``git ARGS``; RuntimeError on a non-zero exit unless ``check`` is false."""
    out = run_git(args, cwd)
    if check and out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def git_toplevel(path: str | Path) -> Path | None:
    """The top folder of the git work tree holding ``path``; None when it is in none (the one check
    that a command runs inside a repository: sweep, init, reproduce, the run records)."""
    proc = run_git(["rev-parse", "--show-toplevel"], path)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def exp_refs(cwd: str | Path) -> list[tuple[str, str]]:
    """``(refname, commit)`` of every ref under ``refs/exps`` (DVC experiments; none outside a repository)."""
    out = run_git(["for-each-ref", "--format=%(refname) %(objectname)", "refs/exps"], cwd).stdout
    refs = []
    for line in out.splitlines():
        ref, _, rev = line.partition(" ")
        if ref:
            refs.append((ref, rev))
    return refs


def excluded(paths: tuple[str, ...]) -> list[str]:
    """git pathspecs that leave ``paths`` out."""
    return [f":(exclude){p}" for p in paths]


@dataclass(frozen=True)
class GitState:
    commit: str | None
    branch: str | None
    dirty: bool
    is_repo: bool

    def to_dict(self) -> dict:
        return asdict(self)


def git_state(cwd: str | Path = ".", exclude: tuple[str, ...] = ()) -> GitState:
    """The commit, branch and dirty flag of the repository at ``cwd``.

    ``exclude``: paths whose changes do not make the code dirty, e.g. ``runs`` — the pipeline's
    own outputs, which DVC deletes before a stage runs even when git tracks them (metrics files).
    """
    if git_toplevel(cwd) is None:
        return GitState(commit=None, branch=None, dirty=False, is_repo=False)
    commit = git(["rev-parse", "HEAD"], cwd, check=False).strip() or None
    branch = git(["rev-parse", "--abbrev-ref", "HEAD"], cwd, check=False).strip() or None
    # Dirty = a tracked file differs from HEAD (untracked files never enter a snapshot).
    dirty = bool(
        git(["status", "--porcelain", "--untracked-files=no", "--", ".", *excluded(exclude)], cwd, check=False).strip()
    )
    return GitState(commit=commit, branch=branch if branch != "HEAD" else None, dirty=dirty, is_repo=True)
