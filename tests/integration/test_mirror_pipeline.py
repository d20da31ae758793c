"""The real pipeline mirrored into a real MLflow server, and surviving that server's death."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import MlflowServer
from tests.projects import paused, run, subprocess_env, write_params

pytestmark = pytest.mark.slow


def _mlflow_run(uri: str, run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("reprokit")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`reprokit.run_id` = '{run_id}'")
    assert len(runs) == 1, f"expected one MLflow run for {run_id}, found {len(runs)}"
    return client, runs[0]


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _assert_complete(client, mlrun, repo: Path) -> None:
    metrics = mlrun.data.metrics
    train = json.loads((repo / "runs/train/metrics.json").read_text())
    val = json.loads((repo / "runs/validate/metrics.json").read_text())
    by_category = json.loads((repo / "runs/validate/by_category.json").read_text())["by_category"]
    assert metrics["train_epoch/loss"] == pytest.approx(train["loss"])
    assert metrics["validate/cmc_at_1"] == pytest.approx(val["overall"]["cmc@1"])
    assert metrics["validate/3/map_at_5"] == pytest.approx(by_category["3"]["map@5"])
    history = client.get_metric_history(mlrun.info.run_id, "train/loss")
    steps = (repo / "runs/train/plots/step.tsv").read_text().splitlines()[1:]
    assert len(history) == len(steps)  # every step, once
    assert mlrun.data.params["train.epochs"] == "2"
    assert mlrun.data.tags["git_commit"] and mlrun.data.tags["git_dirty"] in ("true", "false")
    files = _artifacts(client, mlrun.info.run_id)
    needed_files = (
        "train/artifacts/code.tar.gz",
        "train/artifacts/config.yaml",
        "train/artifacts/dataframe.csv",
        "report/index.html",
    )
    for needed in needed_files:
        assert needed in files, (needed, sorted(files))
    assert any(f.startswith("images/visualize/worst_queries") and f.endswith(".png") for f in files)


def test_every_stage_lands_in_one_mlflow_run(pipeline_copy: Path, mirror_mlflow_server: str):
    write_params(pipeline_copy, {"logger": {"name": "mlflow", "args": {"tracking_uri": mirror_mlflow_server}}})
    out = run(["dvc", "repro"], pipeline_copy).stdout
    assert "Running stage 'mirror'" in out and "Running stage 'train'" not in out  # only the mirror re-runs
    run_id = json.loads((pipeline_copy / "runs/mirror/report.json").read_text())["run_id"]  # the pipeline run
    client, mlrun = _mlflow_run(mirror_mlflow_server, run_id)
    _assert_complete(client, mlrun, pipeline_copy)


def test_server_dies_mid_pipeline_then_reprokit_mirror_fills_the_run_in(pipeline_copy: Path, tmp_path: Path):
    server = MlflowServer(tmp_path / "mlflow")
    uri = server.start()
    try:
        write_params(pipeline_copy, {"logger": {"name": "mlflow", "args": {"tracking_uri": uri}, "timeout_s": 20.0}})
        # The finished copy's training stands; validate, visualize and mirror run again, and the
        # server dies as validate starts: the pipeline is under way, its mirror still to come.
        proc = subprocess.Popen(
            ["dvc", "repro", "--force", "--downstream", "validate"],
            cwd=pipeline_copy,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        watchdog = threading.Timer(900, proc.kill)  # a hung pipeline must not hang the suite
        watchdog.daemon = True
        watchdog.start()
        head = []
        for line in proc.stdout:
            head.append(line)
            if line.startswith("Running stage 'validate'"):
                break
        with paused(proc):  # frozen, the pipeline cannot reach its mirror stage before the server is down
            server.stop()
        started = time.monotonic()
        rest, _ = proc.communicate(timeout=900)
        watchdog.cancel()
        out = "".join(head) + rest
        assert proc.returncode == 0, out
        ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
        assert ran == {"validate", "visualize", "report", "mirror"}, out
        assert "reprokit mirror: warning: mirroring run" in out and "replay later with `reprokit mirror`" in out
        for rel in ("runs/validate/metrics.json", "runs/visualize/worst_queries.png", "runs/train/model.ckpt"):
            assert (pipeline_copy / rel).is_file()
        report = json.loads((pipeline_copy / "runs/mirror/report.json").read_text())
        assert report["ok"] is False and report["error"]
        assert time.monotonic() - started < 240  # seconds of mirror failure, not MLflow's 4-minute retries

        server.start()  # same port, same store
        filled = run([sys.executable, "-m", "reprokit.cli", "mirror"], pipeline_copy)
        assert "warning" not in filled.stderr
        run_id = json.loads((pipeline_copy / "runs/mirror/report.json").read_text())["run_id"]  # the pipeline run
        client, mlrun = _mlflow_run(uri, run_id)
        _assert_complete(client, mlrun, pipeline_copy)
    finally:
        server.stop()
