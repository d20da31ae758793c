"""The rule "every file a stage reads is a DVC dependency": what a stage reads (the import scan, the
file-naming keys), DVC's rendering of its deps, the one-line refusal, `reprokit deps --write`, and
what `reprokit reproduce` makes of the recorded hashes. Real DVC in temporary git repositories."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from reprokit.core.dvc_yaml_edit import add_deps, raw_deps, remove_deps
from reprokit.core.errors import ConfigError, DependencyError
from reprokit.core.project_imports import imported_files, project_relative
from reprokit.core.stage_deps import (
    check_stage,
    config_inputs,
    input_hashes,
    require_stage_deps,
    stage_params,
    sync_deps,
)
from reprokit.provenance.reproduce import code_differences
from tests.projects import PROJECT_ROOT as ROOT
from tests.projects import subprocess_env

PARAMS = {
    "data": {"dataframe": "data/df.csv", "root": "data", "generate": []},
    "model": {"name": "my_models:build"},
    "train": {"loss": {"name": "my_losses:build"}},
}
DVC_YAML = """\
# the user's comment, kept byte for byte
stages:
  train:
    cmd: python -m stages.train --params params.yaml
    deps:
      - ${data.dataframe}
      - ${data.root}
      - stages   # entry points
    params:
      - model
  validate:
    cmd: python -m stages.validate
    deps:
      - ${data.dataframe}
      - ${data.root}
      - stages
  visualize:
    cmd: python -m stages.visualize
    deps:
      - stages
      - ${data.root}
      - ${data.dataframe}
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A git + DVC repository with data, a model and a loss module of the user's, and params.yaml."""
    root = tmp_path / "proj"
    root.mkdir()
    env = subprocess_env()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=env)
    _write(
        root,
        {
            "data/df.csv": "label,path\n",
            "stages/__init__.py": "",
            "my_models.py": "import torch\nfrom my_layers import block\n\ndef build(in_channels):\n    return block()\n",
            "my_layers.py": "def block():\n    from nets.heads import head  # a lazy import is seen too\n    return head\n",
            "nets/__init__.py": "",
            "nets/heads.py": "from . import util\nhead = 1\n",
            "nets/util.py": "import os\n",
            "my_losses.py": "import importlib\nimportlib.import_module('loss_parts')\n",
            "loss_parts.py": "",
            "unrelated.py": "",
            "dvc.yaml": DVC_YAML,
            "params.yaml": yaml.safe_dump(PARAMS),
        },
    )
    monkeypatch.chdir(root)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    return root


def test_the_scan_follows_project_imports_and_nothing_else(project):
    found = imported_files(["my_models", "my_losses", "torch", "no_such_module"], project)
    assert found["my_models"] == ["my_layers.py", "my_models.py", "nets/__init__.py", "nets/heads.py", "nets/util.py"]
    assert found["my_losses"] == ["loss_parts.py", "my_losses.py"]
    assert found["torch"] == [] and found["no_such_module"] == []


def test_a_linked_module_is_the_project_file_and_a_venv_is_not(project):
    (project / "real").mkdir()
    (project / "real/impl.py").write_text("")
    (project / "linked.py").symlink_to(project / "real/impl.py")
    assert imported_files(["linked"], project)["linked"] == ["linked.py"]
    assert project_relative(project / ".venv/lib/site-packages/x.py", project) is None
    assert project_relative("/usr/lib/python3/os.py", project) is None


def test_config_inputs_walk_every_name_block_and_the_file_keys(project):
    params = {
        **PARAMS,
        "train": {"loss": {"name": "pml:ArcFaceLoss"}, "augment": [{"name": "RandomFlip"}, {"name": "my_losses:aug"}]},
        "model": {"name": "hf", "args": {"path": "weights/vit"}, "weights": "weights/w.safetensors"},
    }
    got = {i.path: (i.reason, i.dep_line) for i in config_inputs(params, "train", project)}
    assert got["my_losses.py"] == ("train.augment[1].name 'my_losses:aug'", "my_losses.py")
    assert got["loss_parts.py"][0] == "imported for train.augment[1].name 'my_losses:aug'"
    assert got["weights/vit"] == ("model.args.path", "${model.args.path}")
    assert got["weights/w.safetensors"] == ("model.weights", "${model.weights}")
    assert got["data/df.csv"] == ("data.dataframe", "${data.dataframe}")
    # validate builds no loss; model.args.path names a model folder only for model.name: hf.
    not_hf = {**params, "model": {"name": "x", "args": {"path": "p"}}}
    validate = {i.path for i in config_inputs(not_hf, "validate", project)}
    assert validate == {"data/df.csv", "data"}


def test_a_module_in_a_package_is_covered_by_its_package_folder(project):
    params = {**PARAMS, "model": {"name": "nets.heads:build"}}
    lines = {i.path: i.dep_line for i in config_inputs(params, "validate", project)}
    assert lines["nets/heads.py"] == "nets" and lines["nets/util.py"] == "nets"


def test_a_stage_refuses_with_one_line_naming_file_stage_and_the_line_to_add(project):
    with pytest.raises(DependencyError) as err:
        require_stage_deps("train", "params.yaml")
    line = err.value.one_line()
    assert "\n" not in line and "stage 'train'" in line
    for rel in ("my_models.py", "my_layers.py", "nets/heads.py", "my_losses.py", "loss_parts.py"):
        assert rel in line
    assert "'- my_models.py'" in line and "'- nets'" in line and "stages.train.deps" in line
    assert "reprokit deps --write" in line and "unrelated.py" not in line


def test_deps_write_adds_the_lines_keeping_the_rest_and_then_every_stage_passes(project, capsys):
    before = (project / "dvc.yaml").read_text()
    lines, code = sync_deps("params.yaml", project, write=False)
    assert code == 1 and any(line.startswith("train: my_models.py") for line in lines)
    assert (project / "dvc.yaml").read_text() == before  # printing changes nothing
    lines, code = sync_deps("params.yaml", project, write=True)
    assert code == 0
    after = (project / "dvc.yaml").read_text()
    assert after.startswith("# the user's comment, kept byte for byte\n") and "- stages   # entry points\n" in after
    deps = raw_deps(project / "dvc.yaml")
    assert {"my_models.py", "my_layers.py", "nets", "my_losses.py", "loss_parts.py"} <= set(deps["train"])
    assert "my_losses.py" not in deps["validate"]  # only train builds the loss
    for stage in ("train", "validate", "visualize"):
        assert require_stage_deps(stage, "params.yaml") is not None
    lines, code = sync_deps("params.yaml", project, write=False)
    assert code == 0 and all(": ok (" in line for line in lines)
    assert add_deps(project / "dvc.yaml", {"train": ["my_models.py"]}) == []  # never twice


def test_a_flow_list_is_not_rewritten(project):
    text = (project / "dvc.yaml").read_text()
    flow = "  visualize:\n    cmd: x\n    deps: [stages]\n"
    (project / "dvc.yaml").write_text(text[: text.index("  visualize:")] + flow)
    with pytest.raises(ConfigError, match="on one line") as err:
        add_deps(project / "dvc.yaml", {"visualize": ["my_models.py"]})
    assert "'- my_models.py' under stages.visualize.deps by hand" in err.value.one_line()


def test_a_null_templated_dep_is_reported_and_removed(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["root"] = None  # a key params.yaml holds as null: DVC cannot render ${data.root}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    lines, code = sync_deps("params.yaml", project, write=False)
    assert code == 1 and "'- ${data.root}' names data.root, which is null" in lines[0]
    remove_deps(project / "dvc.yaml", {"train": ["${data.root}"]})
    assert "${data.root}" not in raw_deps(project / "dvc.yaml")["train"]


def test_the_stage_dvc_runs_is_the_one_checked(project, monkeypatch):
    text = (project / "dvc.yaml").read_text().replace("  train:\n", "  train_big:\n")
    (project / "dvc.yaml").write_text(text + "  train:\n    cmd: x\n    deps: [stages, my_models.py]\n")
    monkeypatch.setenv("DVC_STAGE", "train_big")
    with pytest.raises(DependencyError, match="stage 'train_big'"):
        require_stage_deps("train", "params.yaml")


def test_what_the_quick_rendering_leaves_to_dvc_is_rendered_by_dvc(project):
    # A vars file and an index: DVC's own API renders them (the quick path covers ${a.b} from params.yaml).
    (project / "paths.yaml").write_text("code: [my_models.py]\n")
    text = (project / "dvc.yaml").read_text().replace("stages:\n", "vars:\n  - paths.yaml\nstages:\n", 1)
    indexed = text.replace("      - stages   # entry points\n", "      - stages\n      - ${code[0]}\n", 1)
    (project / "dvc.yaml").write_text(indexed)
    check = check_stage("train", PARAMS, project)
    assert "my_models.py" not in {i.path for i in check.missing} and "my_layers.py" in {i.path for i in check.missing}


def test_without_dvc_yaml_the_check_is_skipped_with_a_note(project, capsys):
    (project / "dvc.yaml").unlink()
    check = require_stage_deps("train", "params.yaml", hash_inputs=True)
    assert "no dvc.yaml" in capsys.readouterr().err
    # The records still name what it read.
    assert check.hashes["my_models.py"] == hashlib.sha256((project / "my_models.py").read_bytes()).hexdigest()
    assert check_stage("validate", PARAMS, project) is None


def test_hashes_cover_code_weights_and_the_dataframe_not_the_image_folder(project):
    (project / "w.pt").write_bytes(b"weights")
    inputs = config_inputs({**PARAMS, "model": {"name": "my_models:build", "weights": "w.pt"}}, "train", project)
    hashes = input_hashes(inputs, project)
    assert hashes["w.pt"] == hashlib.sha256(b"weights").hexdigest()
    assert "data/df.csv" in hashes and "data" not in hashes and "my_layers.py" in hashes


def test_reproduce_names_a_module_the_revision_lacks_or_holds_otherwise(tmp_path):
    runs = tmp_path / "runs/train"
    runs.mkdir(parents=True)
    (tmp_path / "my_models.py").write_text("# committed\n")
    (tmp_path / "df.csv").write_text("other data\n")
    ran = hashlib.sha256(b"# edited, not committed\n").hexdigest()
    inputs = {"my_models.py": ran, "my_losses.py": ran, "df.csv": ran}
    (runs / "run.json").write_text(json.dumps({"run_id": "x", "inputs": inputs}))
    found = code_differences(tmp_path)
    assert len(found) == 2  # data is DVC's to name (data_differences)
    assert found[0].startswith("my_losses.py (the run imported it; the revision does not have it")
    assert found[1].startswith(f"my_models.py (the run imported sha256 {ran[:12]}")
    os.remove(runs / "run.json")
    assert code_differences(tmp_path) == []


def test_this_repositorys_own_pipeline_passes_the_rule(monkeypatch):
    from tests.import_graph import ROOT

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in ("train", "validate", "visualize"):
        check = check_stage(stage, params, ROOT)
        assert check is not None and check.missing == [], stage
        assert "models.py" in {i.path for i in check.inputs}  # the link into the templates, as DVC sees it


def test_init_lists_the_code_folder_as_a_dependency_of_the_stages_that_import_it(tmp_path):
    from reprokit.project.init import InitError, init_project

    repo = tmp_path / "proj"
    (repo / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    report = init_project(repo)
    assert report.code_dirs == ["src"]
    deps = raw_deps(repo / "dvc.yaml")
    assert all("src" in deps[stage] for stage in ("train", "validate", "visualize")) and "src" not in deps["report"]
    named = init_project(repo, code=("mypkg",))
    assert named.code_dirs == ["mypkg"] and (repo / "mypkg/__init__.py").is_file()
    assert "mypkg" in raw_deps(repo / "dvc.yaml")["validate"]
    with pytest.raises(InitError, match="inside the repository"):
        init_project(repo, code=("../elsewhere",))


def test_a_stage_records_the_params_dvc_yaml_lists_for_it_as_the_user_edits_them(project, monkeypatch):
    from reprokit.core.config import config_from_dict
    from reprokit.core.stage_runner import record_params

    monkeypatch.delenv("DVC_STAGE", raising=False)
    repo_own = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["visualize"]["params"]
    assert stage_params("visualize", ROOT) == repo_own  # this repository's pipeline: its own list
    text = (
        "stages:\n"
        "  visualize:\n    cmd: x\n    params: [data.root, {params.yaml: [visualize.top_k]}, {other.yaml: [a]}]\n"
        "  report:\n    cmd: x\n    params: [{params.yaml: null}]\n"
        "  prepare:\n    foreach: [a, b]\n    do: {cmd: x, params: [seed]}\n"
    )
    (project / "dvc.yaml").write_text(text)
    assert stage_params("visualize", project) == ["data.root", "visualize.top_k"]  # other files: not params.yaml's
    assert stage_params("report", project) is None  # the whole file: nothing narrows it
    monkeypatch.setenv("DVC_STAGE", "prepare@b")
    assert stage_params("prepare", project) == ["seed"]
    monkeypatch.delenv("DVC_STAGE")
    assert stage_params("mirror", project) is None  # a stage dvc.yaml does not have: a run outside it

    cfg = config_from_dict({"visualize": {"top_k": 7}})
    out = record_params(project / "rec.yaml", cfg, stage_params("visualize", project))
    assert yaml.safe_load(out.read_text()) == {"data": {"root": cfg.data.root}, "visualize": {"top_k": 7}}
    assert yaml.safe_load(record_params(project / "all.yaml", cfg, None).read_text()).keys() == cfg.to_dict().keys()
    (project / "dvc.yaml").write_text("stages:\n  visualize:\n    cmd: x\n    params: [visualize.top_kk]\n")
    with pytest.raises(ConfigError, match="params key 'visualize.top_kk' .* is not a key of params.yaml"):
        record_params(project / "rec.yaml", cfg, stage_params("visualize", project))
    (project / "dvc.yaml").unlink()
    assert stage_params("visualize", project) is None  # no pipeline (a notebook): the whole config is recorded
