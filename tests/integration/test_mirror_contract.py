"""One contract over every mirror backend: the same assertions, read back with each backend's client.

No mocks: TensorBoard event files, CSV files, a real `mlflow server` on 127.0.0.1, ClearML's
offline session zip, W&B's offline record file. A backend whose package is missing is skipped
with the reason. Also here: replaying twice into one logger, a dead MLflow server (timeouts and the
other failures: test_mirror_failures.py), the ClearML determinism guard, secrets.
"""

from __future__ import annotations

import importlib.util
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from reprokit.core.config import LoggerConfig
from reprokit.core.errors import MirrorError
from reprokit.core.fileio import read_json
from reprokit.mirror import mirror_run
from tests.integration import mirror_readers as readers
from tests.integration.conftest import mirror_free_port
from tests.integration.mirror_data import build_run_folder

PACKAGES = {"tensorboard": "tensorboard", "csv": "yaml", "mlflow": "mlflow", "clearml": "clearml", "wandb": "wandb"}
SLOW = {"mlflow", "clearml"}  # a server start-up / ClearML's ~10 s close
BACKENDS = [pytest.param(b, marks=[pytest.mark.slow] if b in SLOW else []) for b in PACKAGES]


def _require(backend: str) -> None:
    if importlib.util.find_spec(PACKAGES[backend]) is None:
        pytest.skip(f"{backend}: its package {PACKAGES[backend]!r} is not installed here")


def _args(backend: str, request) -> dict:
    if backend == "mlflow":
        return {"tracking_uri": request.getfixturevalue("mirror_mlflow_server"), "experiment_name": "contract"}
    return {}


def _read(backend: str, report: dict, tmp_path: Path) -> readers.View:
    where = report["where"]
    if backend == "mlflow":
        return readers.read_mlflow(where, tmp_path / "download")
    return getattr(readers, f"read_{backend}")(where)


def _environment() -> dict[str, str]:
    """os.environ, which a mirror must leave as it found it (what it sets for a backend's library, and
    what ClearML sets itself). The one exception: WANDB_SERVICE, the address of the W&B service that
    this process keeps running (W&B's own way for child processes to share it)."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract(backend, mirror_project, request, tmp_path):
    _require(backend)
    project, exp = mirror_project
    logger = LoggerConfig(name=backend, args=_args(backend, request), timeout_s=120)
    env_before = _environment()
    report = mirror_run(runs_dir="runs", logger=logger, tags=("extra-tag",), project_dir=project)

    assert report["ok"], report["error"]
    env_after = _environment()
    assert env_after == env_before, {k for k in env_before.keys() ^ env_after.keys()}
    assert report == read_json(project / "runs" / "mirror" / "report.json")
    assert (report["run_id"], report["run_name"], report["missing"]) == (exp.run_id, exp.run_name, [])
    n_scalars = sum(len(p) for p in exp.scalars.values())
    assert report["counts"]["scalars"] == n_scalars
    assert report["counts"]["images"] == sum(len(shots) for steps in exp.images.values() for shots in steps.values())
    assert report["counts"]["texts"] == sum(len(texts) for steps in exp.texts.values() for texts in steps.values())
    assert report["counts"]["artifacts"] == len(exp.artifacts)
    exp.user_tags.append("extra-tag")
    readers.assert_contract(_read(backend, report, tmp_path), exp)
    if backend in ("tensorboard", "csv", "clearml", "wandb"):
        # default folders are under the project's logs/, never in ~ or the cwd
        where = next(v for k, v in report["where"].items() if k in ("log_dir", "offline_zip", "run_dir"))
        assert Path(where).is_relative_to(project.resolve() / "logs"), where


def _sessions(project: Path, backend: str, run_id: str) -> list[Path]:
    """Every logger run a backend left for the pipeline run under the project's logs/."""
    logs = project / "logs"
    if backend in ("tensorboard", "csv"):
        return sorted((logs / backend).iterdir())
    if backend == "clearml":
        return sorted((logs / "clearml" / "offline").glob("offline-*.zip"))
    if backend == "wandb":
        return sorted((logs / "wandb").glob(f"offline-run-*-{run_id}*"))
    raise AssertionError(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replaying_twice(backend, mirror_project, request, tmp_path):
    """The same pipeline run replayed twice into the same logger.

    TensorBoard, CSV, MLflow: one logger run, the same content, no duplicate point. ClearML and
    W&B offline start a new offline session per replay (see NOTES.md): two sessions, each holding
    the whole run, with identical content (W&B: both under the pipeline run's id).
    """
    _require(backend)
    project, exp = mirror_project
    args = _args(backend, request) | ({"experiment_name": "replay"} if backend == "mlflow" else {})
    logger = LoggerConfig(name=backend, args=args, timeout_s=120)
    first = mirror_run(logger=logger, project_dir=project)
    assert first["ok"], first["error"]
    view_first = _read(backend, first, tmp_path / "first")  # before the second replay rewrites anything
    second = mirror_run(logger=logger, project_dir=project)
    assert second["ok"], second["error"]
    view_second = _read(backend, second, tmp_path / "second")
    readers.assert_contract(view_second, exp)
    assert view_second == view_first  # the same content, read back with the backend's own client
    assert first["counts"] == second["counts"]
    if backend == "mlflow":
        from mlflow.tracking import MlflowClient

        assert first["where"] == second["where"]  # the same MLflow run, found again ...
        client = MlflowClient(tracking_uri=args["tracking_uri"])
        experiment = client.get_experiment_by_name("replay")
        found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`reprokit.run_id` = '{exp.run_id}'")
        assert [r.info.run_id for r in found] == [first["where"]["logger_run_id"]]  # ... by its reprokit.run_id tag
        assert found[0].info.status == "FINISHED"
        for key in found[0].data.metrics:  # each point once (assert_contract also checks every step)
            history = client.get_metric_history(found[0].info.run_id, key)
            assert len(history) == len({m.step for m in history}), (key, [(m.step, m.value) for m in history])
        return
    sessions = _sessions(project, backend, exp.run_id)
    if backend in ("tensorboard", "csv"):
        assert first["where"] == second["where"]  # the same folder, rewritten whole
        assert sessions == [Path(first["where"]["log_dir"])]
        if backend == "tensorboard":
            assert len(list(sessions[0].glob("events.out.tfevents.*"))) == 1  # replaced, not appended to
    elif backend == "clearml":
        # A new offline task each time: two session zips, two task ids, the same content.
        zips = [Path(first["where"]["offline_zip"]), Path(second["where"]["offline_zip"])]
        assert zips[0] != zips[1] and sessions == sorted(zips)
        assert first["where"]["logger_run_id"] != second["where"]["logger_run_id"]
    else:  # wandb
        # Two offline run folders, both for the W&B run id = the pipeline run's id, the same content.
        dirs = [Path(first["where"]["run_dir"]), Path(second["where"]["run_dir"])]
        assert dirs[0] != dirs[1] and sessions == sorted(dirs), (dirs, sessions)
        assert first["where"]["logger_run_id"] == second["where"]["logger_run_id"] == exp.run_id


def test_missing_stages_are_reported_and_the_rest_mirrored(tmp_path, capsys):
    runs, exp = build_run_folder(tmp_path, stages=("train",))
    report = mirror_run(logger=LoggerConfig(), project_dir=tmp_path)
    assert report["ok"] and report["missing"] == ["validate/", "visualize/"]
    assert "not mirrored: validate/, visualize/" in capsys.readouterr().err
    view = readers.read_tensorboard(report["where"])
    assert "train/loss" in view.scalars and not any(t.startswith("validate/") for t in view.scalars)


# -- failure handling ---------------------------------------------------------------------------


def test_dead_mlflow_server_costs_seconds_and_warns(mirror_project, capsys):
    _require("mlflow")
    project, _ = mirror_project
    dead = LoggerConfig(name="mlflow", args={"tracking_uri": f"http://127.0.0.1:{mirror_free_port()}"}, timeout_s=30)
    t0 = time.monotonic()
    report = mirror_run(logger=dead, project_dir=project)
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert elapsed < 15, f"a dead server cost {elapsed:.1f} s"
    assert not report["ok"] and report["error"]
    assert read_json(project / "runs" / "mirror" / "report.json")["error"] == report["error"]
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "into mlflow failed" in warnings[0], err
    with pytest.raises(MirrorError, match="into mlflow failed"):
        mirror_run(logger=LoggerConfig(name="mlflow", args=dead.args, strict=True, timeout_s=30), project_dir=project)


@pytest.mark.slow
def test_mlflow_filled_in_after_the_server_was_down(mirror_project, mirror_mlflow_server, tmp_path):
    project, exp = mirror_project
    down = mirror_run(
        logger=LoggerConfig(
            name="mlflow", args={"tracking_uri": f"http://127.0.0.1:{mirror_free_port()}"}, timeout_s=20
        ),
        project_dir=project,
    )
    assert not down["ok"]
    up = mirror_run(
        logger=LoggerConfig(name="mlflow", args={"tracking_uri": mirror_mlflow_server, "experiment_name": "later"}),
        project_dir=project,
    )
    assert up["ok"], up["error"]
    readers.assert_contract(readers.read_mlflow(up["where"], tmp_path / "dl"), exp)


# -- determinism and secrets --------------------------------------------------------------------


@pytest.mark.slow
def test_clearml_does_not_touch_rng_state(mirror_project):
    _require("clearml")
    torch = pytest.importorskip("torch")
    project, _ = mirror_project
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    report = mirror_run(logger=LoggerConfig(name="clearml", timeout_s=120), project_dir=project)
    assert report["ok"], report["error"]
    after = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    assert after == (random.random(), np.random.rand(), torch.rand(1).item())


@pytest.mark.parametrize("backend", ["tensorboard", "csv", "wandb"])
def test_api_token_in_args_is_never_written_or_printed(backend, mirror_project, capfd):
    _require(backend)
    project, _ = mirror_project
    report = mirror_run(logger=LoggerConfig(name=backend, args={"api_token": "abc123"}), project_dir=project)
    out, err = capfd.readouterr()
    assert report["ok"], report["error"]
    assert report["args"] == {"api_token": "***REDACTED***"}
    assert "logger.args api_token ignored" in err
    written = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.is_relative_to(project / "logs") for p in written)
    leaks = [p for p in written if b"abc123" in p.read_bytes()]
    assert not leaks, leaks
    assert "abc123" not in out + err
