"""Helpers for integration tests: a throwaway copy of this project as its own git + DVC repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.run_record import deep_update

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Small enough for seconds, big enough to be a retrieval task (used by the integration tests).
REDUCED_PARAMS: dict[str, Any] = {
    "data": {"digits": {"n_source": 240}},
    "train": {"epochs": 2, "n_labels": 16},
    "visualize": {"n_queries": 3},
}
# The experiment the session fixture `experiment_repo` runs on the committed reduced pipeline.
EXPERIMENT = "one-epoch"
EXPERIMENT_OVERRIDE = "train.epochs=1"


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `dvc`/stage subprocesses: this venv first on PATH, git identity set."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "GIT_AUTHOR_NAME": "reprokit tests",
            "GIT_AUTHOR_EMAIL": "tests@reprokit.invalid",
            "GIT_COMMITTER_NAME": "reprokit tests",
            "GIT_COMMITTER_EMAIL": "tests@reprokit.invalid",
            "DVC_NO_ANALYTICS": "1",
            "PYTHONHASHSEED": "0",
        }
    )
    env.pop("DVC_EXP_NAME", None)
    if extra:
        env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: float = 900):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or subprocess_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (PROJECT_ROOT / f).is_file()]


def write_params(repo: Path, overrides: dict[str, Any]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_update(params, overrides), sort_keys=False))


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of a finished repo (git history, DVC cache, outputs), for a test to change."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def make_project_copy(dest: Path, params: dict[str, Any] | None = None, commit: bool = True) -> Path:
    """Copy the project's files (tracked + new, not ignored) into ``dest`` and make it a git repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        if rel.startswith(("runs/", "data/")) or rel == "dvc.lock":  # the project, not its committed results
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, target)
    if params:
        write_params(dest, params)
    run(["git", "init", "-q", "-b", "main"], dest)
    if commit:
        commit_all(dest, "project copy")
    return dest
