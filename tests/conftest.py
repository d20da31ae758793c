"""Finished pipeline runs shared by the slow tests.

Each `dvc repro` of even the reduced pipeline starts five stage processes (torch + Lightning
imports dominate: tens of seconds on 2 shared cores), so a run that several tests can start from
is made once per session and each test that changes it gets a private `shutil.copytree` copy.
A test still runs for real whatever it checks (a forced re-run, a killed stage, an experiment).

Under pytest-xdist (`make test`: three workers) a session fixture is per worker, so each would run
the same pipeline again: `tests.projects.built_once` builds it once for the session, in the folder the
workers share, and the other worker waits for it (it would have spent that time building it).
"""

from pathlib import Path

import pytest

from tests.projects import (
    EXPERIMENT,
    EXPERIMENT_OVERRIDE,
    REDUCED_PARAMS,
    built_once,
    commit_all,
    copy_repo,
    make_project_copy,
    run,
)


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
