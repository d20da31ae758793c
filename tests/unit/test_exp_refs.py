"""``reprokit.core.git.exp_refs`` and its two readers: tune's experiment list and reproduce's name lookup."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reprokit.core.errors import ReproduceError
from reprokit.core.git import exp_refs
from reprokit.provenance.reproduce import resolve_rev
from reprokit.tune.trials import Experiment, find_experiment, list_experiments

BASE = "ab" + "c" * 38


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    _git(tmp_path, "update-ref", f"refs/exps/{BASE[:2]}/{BASE[2:]}/sweep-1", head)
    _git(tmp_path, "update-ref", "refs/exps/exec/other", head)  # not an experiment ref of DVC's layout
    return tmp_path, head


def test_exp_refs(repo: tuple[Path, str]) -> None:
    path, head = repo
    assert sorted(exp_refs(path)) == sorted(
        [(f"refs/exps/{BASE[:2]}/{BASE[2:]}/sweep-1", head), ("refs/exps/exec/other", head)]
    )


def test_exp_refs_outside_a_repository(tmp_path: Path) -> None:
    assert exp_refs(tmp_path) == []


def test_list_experiments_keeps_only_dvc_layout(repo: tuple[Path, str]) -> None:
    path, head = repo
    assert list_experiments(path) == [Experiment("sweep-1", head, BASE)]
    assert find_experiment(path, "sweep-1", BASE) == Experiment("sweep-1", head, BASE)
    assert find_experiment(path, "sweep-1", "0" * 40) is None


def test_resolve_rev_by_experiment_name(repo: tuple[Path, str]) -> None:
    path, head = repo
    assert resolve_rev("sweep-1", path) == head
    assert resolve_rev("other", path) == head  # reproduce matches any ref's last part, as before
    with pytest.raises(ReproduceError, match="unknown revision"):
        resolve_rev("nope", path)
    _git(path, "update-ref", "refs/exps/cd/" + "e" * 38 + "/sweep-1", head)
    with pytest.raises(ReproduceError, match="ambiguous"):
        resolve_rev("sweep-1", path)
