"""Finished pipeline runs shared by the slow tests.

Each `dvc repro` of even the reduced pipeline starts five stage processes (torch + Lightning
imports dominate: tens of seconds on 2 shared cores), so a run that several tests can start from
is made once per session and each test that changes it gets a private `shutil.copytree` copy.
A test still runs for real whatever it checks (a forced re-run, a killed stage, an experiment).

Under pytest-xdist (`make test`: two workers) a session fixture is per worker, so each would run
the same pipeline again: `built_once` builds it once for the whole session, in the folder the
workers share, and the other worker waits for it (it would have spent that time building it).
"""

import fcntl
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.projects import (
    EXPERIMENT,
    EXPERIMENT_OVERRIDE,
    REDUCED_PARAMS,
    commit_all,
    copy_repo,
    make_project_copy,
    run,
)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``<shared tmp>/<name>/repo``, made by ``build(repo)`` in the first worker that asks, then reused.

    A build that fails leaves no folder behind, so the next worker to ask builds it again (and
    fails the same way, with its own traceback) instead of reading half a repository.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if _is_xdist_worker(tmp_path_factory) else base  # pytest-of-<user>/pytest-N/
    root = shared / "built-once" / name
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        repo = root / "repo"
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            try:
                build(repo)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            (root / "done").touch()
    return repo


def _is_xdist_worker(tmp_path_factory) -> bool:
    # xdist gives each worker its own base temp (pytest-N/popen-gwK): their parent is common to all.
    return tmp_path_factory.getbasetemp().name.startswith("popen-gw")


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory) -> Path:
    """A project copy with reduced params on which `dvc repro` has run once (read-only for tests)."""

    def build(repo: Path) -> None:
        make_project_copy(repo, REDUCED_PARAMS)
        run(["dvc", "repro"], repo)

    return built_once(tmp_path_factory, "pipeline", build)


@pytest.fixture
def pipeline_copy(pipeline_repo, tmp_path) -> Path:
    """A private copy of the finished pipeline repo, for tests that change it."""
    return copy_repo(pipeline_repo, tmp_path / "repo")


@pytest.fixture(scope="session")
def experiment_repo(pipeline_repo, tmp_path_factory) -> Path:
    """`pipeline_repo` with its run committed ("baseline run"), then one real DVC experiment on top:
    `dvc exp run -S train.epochs=1 -n one-epoch` (re-runs train, validate, visualize, mirror).

    The workspace holds the experiment's params and outputs, as `dvc exp run` leaves it; the
    experiment is in `.git/refs/exps`. Read-only for tests: use `experiment_copy` to change it.
    """

    def build(repo: Path) -> None:
        copy_repo(pipeline_repo, repo)
        commit_all(repo, "baseline run")
        run(["dvc", "exp", "run", "-S", EXPERIMENT_OVERRIDE, "-n", EXPERIMENT], repo)

    return built_once(tmp_path_factory, "experiment", build)


@pytest.fixture
def experiment_copy(experiment_repo, tmp_path) -> Path:
    """A private copy of `experiment_repo`, for tests that change it (or run dvc commands in it)."""
    return copy_repo(experiment_repo, tmp_path / "repo")
