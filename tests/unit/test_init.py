"""`reprokit init`: what it writes, what it refuses, and that its templates are this repository's own files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from reprokit.core.config import config_from_dict, load_config
from reprokit.project.init import IGNORES, TEMPLATE_FILES, InitError, init_project, template_text
from tests.import_graph import ROOT


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


@pytest.mark.parametrize("name", [n for n in TEMPLATE_FILES if n != "dvc.yaml.tmpl"])
def test_templates_are_this_repositorys_files(name):
    """This repository is a reprokit project as `init` makes it: the files cannot drift apart."""
    assert template_text(name) == (ROOT / TEMPLATE_FILES[name]).read_text()


def test_template_dvc_yaml_is_this_repositorys_without_reprokit_code_deps():
    ours = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    theirs = yaml.safe_load(template_text("dvc.yaml.tmpl"))
    for stage in ours["stages"].values():
        spec = stage.get("do", stage)
        spec["deps"] = [d for d in spec["deps"] if not d.startswith("reprokit/")]
    assert theirs == ours


def test_template_params_are_the_schema_defaults_and_every_key_is_commented():
    text = template_text("params.yaml")
    data = yaml.safe_load(text)
    assert config_from_dict(data).to_dict() == config_from_dict({**data}).to_dict()
    # Every section of the schema is present, so a user sees every knob.
    assert set(data) == set(config_from_dict({}).to_dict())
    assert text.count("#") >= len(data)


def test_init_writes_a_loadable_project_and_never_overwrites_without_force(tmp_path):
    repo = _git_repo(tmp_path / "proj")
    report = init_project(repo)
    assert sorted(report.written) == sorted(TEMPLATE_FILES.values())
    assert (repo / ".dvc").is_dir() and report.dvc_initialised
    cfg = load_config(repo / "params.yaml")
    assert cfg.data.generate == ("digits",)
    for rel, lines in IGNORES.items():
        assert set(lines) <= set((repo / rel).read_text().splitlines())

    (repo / "params.yaml").write_text("seed: 7\n")
    again = init_project(repo)
    assert "params.yaml" in again.kept and (repo / "params.yaml").read_text() == "seed: 7\n"
    assert again.updated == []  # ignore lines are not added twice
    forced = init_project(repo, force=True)
    assert "params.yaml" in forced.written and (repo / "params.yaml").read_text() == template_text("params.yaml")


def test_init_outside_a_git_repository_says_how_to_fix_it(tmp_path):
    with pytest.raises(InitError) as err:
        init_project(tmp_path)
    line = err.value.one_line()
    assert "not inside a git repository" in line and "git init" in line and "\n" not in line


def test_stage_entry_points_only_call_the_package():
    for name in TEMPLATE_FILES:
        if name.startswith("stages/") and name != "stages/__init__.py":
            code = template_text(name)
            stage = Path(name).stem
            assert re.search(rf"^from reprokit\.pipeline\.{stage} import main$", code, re.M), name
            assert len([line for line in code.splitlines() if line and not line.startswith(("#", '"'))]) <= 4
