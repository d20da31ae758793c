"""A sweep's trials grouped in every logger (logger.sweep, set by `reprokit sweep` for each trial).

Two pipeline runs (two trials of one sweep) mirrored into each backend, read back with its own
client: TensorBoard/CSV folders under logs/<backend>/<sweep>/, MLflow nested runs of one parent
run, the W&B run group, a ClearML sub-project; each run tagged with the sweep, the trial number
and the DVC experiment name.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from reprokit.core.config import LoggerConfig, SweepGroupConfig
from reprokit.mirror import mirror_run
from tests.integration import mirror_readers as readers
from tests.integration.mirror_data import build_run_folder
from tests.integration.test_mirror_contract import BACKENDS, _args, _read, _require

SWEEP = "lr_margin"


def two_trials(project: Path) -> list[Path]:
    """runs/ folders of two different pipeline runs (two training run ids) in one project."""
    folders = []
    for i in range(2):
        runs, _ = build_run_folder(project / f"trial{i}")
        identity = runs / "train" / "run.json"
        data = json.loads(identity.read_text())
        data["run_id"] = f"{i + 1:x}" * 32
        identity.write_text(json.dumps(data))
        folders.append(runs)
    return folders


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_trials_are_grouped_under_their_sweep_and_tagged(backend, request, tmp_path):
    _require(backend)
    project = tmp_path / "project"
    reports = []
    for trial, runs in enumerate(two_trials(project)):
        logger = LoggerConfig(
            name=backend,
            args=_args(backend, request) | ({"experiment_name": "sweeps"} if backend == "mlflow" else {}),
            timeout_s=120,
            sweep=SweepGroupConfig(name=SWEEP, trial=trial),
        )
        report = mirror_run(runs_dir=runs, logger=logger, project_dir=project)
        assert report["ok"], report["error"]
        reports.append(report)
    assert reports[0]["run_id"] != reports[1]["run_id"]  # two logger runs

    for trial, report in enumerate(reports):
        view = _read(backend, report, tmp_path / f"read{trial}")
        tags = view.key_values
        assert (tags.get("sweep"), tags.get("sweep_trial"), tags.get("dvc_exp_name")) == (
            SWEEP,
            str(trial),
            f"{SWEEP}-{trial}",
        ), tags

    where = [r["where"] for r in reports]
    if backend in ("tensorboard", "csv"):
        folders = [Path(w["log_dir"]) for w in where]
        assert {f.parent for f in folders} == {project.resolve() / "logs" / backend / SWEEP}
        assert len(set(folders)) == 2
    elif backend == "mlflow":
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=_args(backend, request)["tracking_uri"])
        exp_id = client.get_experiment_by_name("sweeps").experiment_id
        (parent,) = client.search_runs([exp_id], filter_string=f"tags.`reprokit.sweep_parent` = '{SWEEP}'")
        assert parent.info.run_name == SWEEP
        children = [client.get_run(w["logger_run_id"]) for w in where]
        assert [c.data.tags.get("mlflow.parentRunId") for c in children] == [parent.info.run_id] * 2
    elif backend == "wandb":
        groups = []
        for w in where:
            (record_file,) = Path(w["run_dir"]).glob("run-*.wandb")
            runs = [r.run for r in readers.wandb_records(record_file) if r.WhichOneof("record_type") == "run"]
            groups.append({r.run_group for r in runs})
        assert groups == [{SWEEP}, {SWEEP}]
    elif backend == "clearml":
        for w in where:
            with zipfile.ZipFile(w["offline_zip"]) as zf:
                task = json.loads(zf.read("task.json"))
            assert task["project_name"] == f"reprokit/{SWEEP}"  # the sweep's sub-project


def test_a_run_outside_a_sweep_is_not_grouped(tmp_path):
    project = tmp_path / "project"
    build_run_folder(project)
    report = mirror_run(logger=LoggerConfig(name="tensorboard"), project_dir=project)
    assert report["ok"], report["error"]
    assert Path(report["where"]["log_dir"]).parent == project.resolve() / "logs" / "tensorboard"
    view = readers.read_tensorboard(report["where"])
    assert "sweep" not in view.key_values
