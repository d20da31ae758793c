import shutil
from pathlib import Path

import pytest

from tests.projects import REDUCED_PARAMS, make_project_copy, run


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory) -> Path:
    """A project copy with reduced params on which `dvc repro` has run once (read-only for tests)."""
    repo = make_project_copy(tmp_path_factory.mktemp("pipeline") / "repo", REDUCED_PARAMS)
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture
def pipeline_copy(pipeline_repo, tmp_path) -> Path:
    """A private copy of the finished pipeline repo, for tests that change it."""
    dest = tmp_path / "repo"
    shutil.copytree(pipeline_repo, dest, symlinks=True)
    return dest
