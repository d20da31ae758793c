"""The mirror registry, argument checks, default folders and run-folder reading (no logger runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reprokit.core.config import LOGGER_NAMES, LoggerConfig
from reprokit.core.errors import ConfigError, MirrorError, MissingBackendError
from reprokit.core.fileio import write_json
from reprokit.mirror import BACKENDS, mirror_run
from reprokit.mirror.base import MirrorBackend
from reprokit.mirror.paths import MARKER, home_dir, run_folder
from reprokit.mirror.registry import BackendSpec, backend_class, check_args
from reprokit.mirror.runfolder import read_run_folder
from reprokit.mirror.tags import flat_tags, key_value_tags

RUN_ID = "0123456789abcdef0123456789abcdef"


def test_registry_lists_exactly_the_configurable_backends():
    from reprokit.mirror import registry

    assert tuple(BACKENDS) == LOGGER_NAMES
    # BACKENDS is read from LOGGER_NAMES: an implementation whose name the schema lacks would be dropped silently.
    assert sorted(s.name for s in registry._IMPLEMENTED) == sorted(LOGGER_NAMES)


def test_the_schema_and_the_registry_refuse_a_retired_logger_with_one_text():
    from reprokit.core.config import config_from_dict

    with pytest.raises(ConfigError) as by_schema:
        config_from_dict({"logger": {"name": "neptune"}})
    with pytest.raises(ConfigError) as by_registry:
        backend_class("neptune")
    assert by_schema.value.one_line() == by_registry.value.one_line()
    assert "Neptune's hosted service has shut down" in by_schema.value.one_line()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_builds_from_its_default_args(name):
    cls = backend_class(name)
    assert issubclass(cls, MirrorBackend) and cls.name == name
    check_args(name, {}, cls.allowed_args)
    cls({}).check_config()


def test_unknown_and_retired_backend_names_list_the_allowed_ones():
    with pytest.raises(ConfigError, match="must be one of tensorboard, csv, mlflow, clearml, wandb; got 'tensorbord'"):
        mirror_run(logger=LoggerConfig(name="tensorbord"))
    with pytest.raises(ConfigError, match="Neptune's hosted service has shut down.*tensorboard, csv"):
        backend_class("neptune")


def test_unknown_args_list_the_allowed_ones_and_secrets_pass_the_check():
    cls = backend_class("mlflow")
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) 'trackng_uri'; allowed: artifact_location, experiment_name, tracking_uri"
    ):
        check_args("mlflow", {"trackng_uri": "x"}, cls.allowed_args)
    check_args("mlflow", {"api_token": "x"}, cls.allowed_args)  # dropped later with a warning


def test_missing_package_gives_the_exact_install_line(monkeypatch):
    registry = {"mlflow": BackendSpec("mlflow", "mlflow", "MlflowBackend", "reprokit_no_such_package", "mlflow")}
    with pytest.raises(MissingBackendError) as info:
        backend_class("mlflow", registry)
    assert 'pip install "reprokit[mlflow]"' in info.value.one_line()
    # the real registry, with the package hidden from imports (how an uninstalled package looks)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingBackendError, match="'mlflow' package is not installed"):
        mirror_run(logger=LoggerConfig(name="mlflow"), runs_dir="does-not-exist")


def test_backend_specific_values_are_checked_before_anything_runs():
    with pytest.raises(ConfigError, match="file store"):
        mirror_run(logger=LoggerConfig(name="mlflow", args={"tracking_uri": "./mlruns"}))
    with pytest.raises(ConfigError, match="mode for 'wandb' must be one of offline, online, disabled; got 'ofline'"):
        mirror_run(logger=LoggerConfig(name="wandb", args={"mode": "ofline"}))


def test_queued_experiments_use_the_original_repos_logs(tmp_path):
    queued = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    queued.mkdir(parents=True)
    assert home_dir(queued) == (tmp_path / "repo").resolve()
    assert home_dir(tmp_path / "repo") == (tmp_path / "repo").resolve()


def test_a_run_folder_of_another_run_id_is_never_reused(tmp_path):
    assert run_folder(tmp_path, "run-a", RUN_ID) == tmp_path / "run-a"
    write_json(tmp_path / "run-a" / MARKER, {"run_id": "f" * 32})
    assert run_folder(tmp_path, "run-a", RUN_ID) == tmp_path / f"run-a-{RUN_ID[:8]}"
    write_json(tmp_path / "run-a" / MARKER, {"run_id": RUN_ID})
    assert run_folder(tmp_path, "run-a", RUN_ID) == tmp_path / "run-a"


def test_tags_for_key_value_and_list_backends():
    kv = key_value_tags(RUN_ID, "r", ["a", "b"], {"git_dirty": "true"})
    assert kv == {"reprokit.run_id": RUN_ID, "reprokit.run_name": "r", "git_dirty": "true", "reprokit.tags": "a,b"}
    assert flat_tags(["a", "a"], {"git_dirty": "true"}) == ["a", "git_dirty:true"]


def _minimal_run(runs: Path, step_tsv: str) -> None:
    write_json(runs / "train" / "run.json", {"run_id": RUN_ID, "run_name": "r"})
    (runs / "train" / "plots").mkdir(parents=True)
    (runs / "train" / "plots" / "step.tsv").write_text(step_tsv)


def test_reading_the_step_table_and_reporting_what_is_missing(tmp_path):
    _minimal_run(tmp_path, "step\tepoch\tloss\tuser\n1\t0\t0.5\t\n2\t0\t0.25\t7\n")
    data = read_run_folder(tmp_path)
    assert [(s.tag, s.step, s.value) for s in data.scalars] == [
        ("train/loss", 1, 0.5),
        ("train/loss", 2, 0.25),
        ("train/user", 2, 7.0),
    ]
    assert data.missing == ["validate/", "visualize/", "train/plots/epoch.tsv", "train/artifacts/config.yaml"]


def test_a_malformed_run_folder_is_reported_and_raises_only_when_strict(tmp_path, capsys):
    _minimal_run(tmp_path / "runs", "step\tepoch\tloss\n1\t0\tnot-a-number\n")
    report = mirror_run(logger=LoggerConfig(name="csv"), project_dir=tmp_path)
    assert not report["ok"] and "column 'loss' must be a number; got 'not-a-number'" in report["error"]
    assert "warning: mirroring run" in capsys.readouterr().err
    with pytest.raises(MirrorError, match="column 'loss' must be a number"):
        mirror_run(logger=LoggerConfig(name="csv", strict=True), project_dir=tmp_path)


def test_no_run_identity_means_nothing_to_mirror(tmp_path):
    report = mirror_run(logger=LoggerConfig(name="csv"), project_dir=tmp_path)
    assert not report["ok"] and "run.json not found" in report["error"]
    assert (tmp_path / "runs" / "mirror" / "report.json").is_file()
