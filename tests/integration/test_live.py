"""Live logging: the logger shows the training while it runs; afterwards one logger run holds everything.

Real `dvc repro` in a copy of the finished pipeline (a few more epochs, so that training goes on for
several epochs after the first one ends), read while the train stage still runs: TensorBoard's
event files with tensorboard's own reader, a real `mlflow server` on 127.0.0.1 with MlflowClient.
"Still running" is proved, not assumed: the train stage writes runs/train/metrics.json last (DVC
deleted it before the stage started), and the dvc process has not exited.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from reprokit.core.fileio import read_json
from tests.integration import mirror_readers as readers
from tests.integration.conftest import MlflowServer
from tests.projects import paused, run, subprocess_env, write_params

pytestmark = pytest.mark.slow

EPOCHS = 6  # the first epoch ends with five more to go


def _expected_curves(repo: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """tag -> step -> (value, wall time) from the train stage's files, read here independently."""
    train = repo / "runs/train"
    wall = pd.read_csv(train / "wall_times.tsv", sep="\t")
    times = {(t, int(k)): w for t, k, w in wall.itertuples(index=False)}
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for name, table, prefix in (
        ("step", "step", "train/"),
        ("epoch", "epoch", "train_epoch/"),
        ("validation", "epoch", ""),
    ):
        frame = pd.read_csv(train / f"plots/{name}.tsv", sep="\t")
        for row in frame.to_dict("records"):
            for col, value in row.items():
                if col in ("step", "epoch") or pd.isna(value):
                    continue
                tag = col if "/" in col else prefix + col
                out.setdefault(tag, {})[int(row["step"])] = (float(value), times[(table, int(row[table]))])
    return out


def _tensorboard_first_epoch(repo: Path) -> tuple[float, str] | None:
    """(first epoch's loss, the run folder's name) once the live folder holds it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for folder in (repo / "logs/tensorboard").glob("*"):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        if "train_epoch/loss" in acc.Tags()["scalars"]:
            return acc.Scalars("train_epoch/loss")[0].value, folder.name
    return None


def _mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([exp.experiment_id]) if exp is not None else [])


def _mlflow_first_epoch(uri: str, experiment: str) -> tuple[float, str] | None:
    """(first epoch's loss, the MLflow run id) once the live run holds it."""
    client, runs = _mlflow_runs(uri, experiment)
    for found in runs:
        history = client.get_metric_history(found.info.run_id, "train_epoch/loss")
        if history:
            return history[0].value, found.info.run_id
    return None


class _Pipeline:
    """`dvc repro` in the background, its output in a file (readable while it runs)."""

    def __init__(self, repo: Path, log: Path) -> None:
        self.repo, self.log = repo, log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                ["dvc", "repro"],
                cwd=repo,
                env=subprocess_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, seen, what: str, timeout: float = 600):
        deadline = time.monotonic() + timeout
        while (value := seen()) is None:
            assert self.proc.poll() is None, f"the pipeline ended before {what}:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
            time.sleep(0.1)
        return value

    def assert_still_training(self) -> None:
        assert not (self.repo / "runs/train/metrics.json").exists(), "train had finished: this proves nothing"
        assert self.proc.poll() is None and "Running stage 'validate'" not in self.output()

    def finish(self, timeout: float = 900) -> str:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.returncode == 0, self.output()[-4000:]
        return self.output()


def _assert_holds_everything(view: readers.View, repo: Path, float32: bool) -> None:
    """One logger run with the whole pipeline run: every curve point once, with its recorded wall time."""
    assert not view.duplicates, view.duplicates[:5]
    expected = _expected_curves(repo)
    assert {"train/loss", "train_epoch/loss", "val/cmc@1", "val/map@5"} <= set(expected)
    for tag, points in expected.items():
        assert set(view.scalars.get(tag, {})) == set(points), tag
        for step, (value, wall) in points.items():
            got = view.scalars[tag][step]
            assert got == (pytest.approx(value, rel=1e-6) if float32 else value), (tag, step)
            assert view.wall_times[tag][step] == pytest.approx(wall, abs=1e-3), (tag, step)
    assert len(expected["val/cmc@1"]) == EPOCHS  # validated after every epoch (the default)
    overall = read_json(repo / "runs/validate/metrics.json")["overall"]
    assert view.scalars["validate/cmc@1"] == {max(expected["train/loss"]): pytest.approx(overall["cmc@1"])}
    assert "visualize/worst_queries" in view.images


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow"])
def test_the_logger_shows_the_first_epoch_while_train_runs(backend, pipeline_copy, tmp_path, request):
    repo = pipeline_copy
    shutil.rmtree(repo / "logs", ignore_errors=True)  # the session run's logger runs: only this one from here on
    if backend == "mlflow":
        uri, experiment = request.getfixturevalue("mirror_mlflow_server"), "live"
        logger = {"name": "mlflow", "args": {"tracking_uri": uri, "experiment_name": experiment}}
        first_epoch = lambda: _mlflow_first_epoch(uri, experiment)  # noqa: E731
    else:
        logger = {"name": "tensorboard"}
        first_epoch = lambda: _tensorboard_first_epoch(repo)  # noqa: E731
    write_params(repo, {"train": {"epochs": EPOCHS}, "logger": logger})

    pipeline = _Pipeline(repo, tmp_path / "dvc.log")
    live_loss, live_run = pipeline.wait_for(first_epoch, "first epoch's loss in the logger")
    pipeline.assert_still_training()
    pipeline.finish()

    training = read_json(repo / "runs/train/run.json")
    report = read_json(repo / "runs/mirror/report.json")
    assert report["ok"], report["error"]
    epoch0 = pd.read_csv(repo / "runs/train/plots/epoch.tsv", sep="\t")["loss"].iloc[0]
    if backend == "mlflow":
        # The very MLflow run that received the training live, adopted: the pipeline run's id and name now.
        client, runs = _mlflow_runs(uri, experiment)
        assert [r.info.run_id for r in runs] == [live_run] == [report["where"]["logger_run_id"]]
        assert runs[0].data.tags["reprokit.run_id"] == report["run_id"] and runs[0].info.run_name == report["run_name"]
        assert runs[0].data.tags["train_run_id"] == training["run_id"]
        assert runs[0].info.status == "FINISHED" and live_loss == epoch0
        view = readers.read_mlflow({"tracking_uri": uri, "logger_run_id": runs[0].info.run_id}, tmp_path / "dl")
    else:
        # The live folder (named after the training) became the pipeline run's, written whole.
        assert live_run == training["run_name"] and report["where"]["adopted_live_run"] == live_run
        (folder,) = (repo / "logs/tensorboard").iterdir()
        assert folder.name == report["run_name"]
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1  # the live file replaced by the whole run
        assert live_loss == pytest.approx(epoch0, rel=1e-6)
        view = readers.read_tensorboard({"log_dir": folder})
    _assert_holds_everything(view, repo, float32=backend == "tensorboard")


def test_a_logger_down_during_training_costs_one_warning_and_the_mirror_fills_in(pipeline_copy, tmp_path):
    repo = pipeline_copy
    server = MlflowServer(tmp_path / "mlflow")
    uri = server.start()
    try:
        write_params(
            repo,
            {
                "train": {"epochs": EPOCHS},
                "logger": {"name": "mlflow", "args": {"tracking_uri": uri}, "timeout_s": 20.0},
            },
        )
        pipeline = _Pipeline(repo, tmp_path / "dvc.log")
        _, live_run = pipeline.wait_for(lambda: _mlflow_first_epoch(uri, "reprokit"), "first epoch's loss in MLflow")
        with paused(pipeline.proc):
            pipeline.assert_still_training()  # the next epochs go to a dead server
            server.stop()
        out = pipeline.finish()
        warnings = [line for line in out.splitlines() if "warning: live logging to mlflow stopped" in line]
        assert len(warnings) == 1, out[-3000:]
        assert "training goes on" in warnings[0]
        assert read_json(repo / "runs/train/metrics.json")["loss"] > 0  # training finished
        assert "reprokit mirror: warning: mirroring run" in out  # the server was still down at the mirror stage

        server.start()  # the same port and store
        filled = run([sys.executable, "-m", "reprokit.cli", "mirror"], repo)
        assert "warning" not in filled.stderr, filled.stderr
        report = read_json(repo / "runs/mirror/report.json")
        client, runs = _mlflow_runs(uri, "reprokit")
        assert [r.info.run_id for r in runs] == [live_run]  # the run filled live, adopted and completed
        assert runs[0].data.tags["reprokit.run_id"] == report["run_id"]
        # What arrived before the server died is there once, the rest filled in.
        history = client.get_metric_history(runs[0].info.run_id, "train_epoch/loss")
        assert len(history) == EPOCHS and len({m.step for m in history}) == EPOCHS
        view = readers.read_mlflow({"tracking_uri": uri, "logger_run_id": runs[0].info.run_id}, tmp_path / "dl")
        _assert_holds_everything(view, repo, float32=False)
    finally:
        server.stop()
