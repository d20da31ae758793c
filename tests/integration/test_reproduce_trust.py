"""`reprokit reproduce` has no silent fallbacks: failed commands stop it, data differences are named,
and a reproduction never publishes to (nor depends on) the team's tracker."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reprokit.core.errors import ReproduceError
from reprokit.provenance.reproduce import _checked, data_differences
from tests.projects import run


def test_a_failing_command_stops_with_one_line_naming_it(tmp_path: Path):
    with pytest.raises(ReproduceError) as err:
        _checked(["git", "rev-parse", "HEAD"], tmp_path, "reading the revision")
    line = err.value.one_line()
    assert "reading the revision failed" in line and "git rev-parse HEAD" in line and "\n" not in line


def test_data_that_differs_from_the_recorded_revision_is_named(tmp_path: Path):
    """A stage input outside git (a user's dataframe at an absolute path) changed since the record."""
    outside = tmp_path / "data" / "df.csv"
    outside.parent.mkdir()
    outside.write_text("label,path\n1,a.png\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {"stages": {"copy": {"cmd": f"cp {outside} out.csv", "deps": [str(outside)], "outs": ["out.csv"]}}}
        )
    )
    run(["dvc", "repro"], repo)
    assert data_differences(repo) == []
    outside.write_text("label,path\n2,a.png\n")
    assert data_differences(repo) == [f"{outside} (modified)"]
