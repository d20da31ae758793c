"""`reprokit mirror --logger NAME` replays a finished run into NAME with NAME's own defaults.

params.yaml's ``logger.args`` belong to params.yaml's ``logger.name``: MLflow's tracking URI
means nothing to the CSV logger, and passed to it would be refused as an unknown arg.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.projects import run


def _params(project: Path, logger: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump({"logger": logger}))


def _mirror(project: Path, *args: str):
    return run([sys.executable, "-m", "reprokit.cli", "mirror", *args], project, check=False)


def test_another_logger_starts_from_its_own_defaults(mirror_project):
    project, expected = mirror_project
    # What the README's example meets: a project configured for a (here unreachable) MLflow server.
    _params(project, {"name": "mlflow", "args": {"tracking_uri": "http://127.0.0.1:9", "experiment_name": "team"}})
    proc = _mirror(project, "--logger", "csv")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((project / "runs/mirror/report.json").read_text())
    assert report["backend"] == "csv" and report["args"] == {} and report["ok"] is True
    folder = project / "logs" / "csv" / expected.run_name  # the CSV logger's default root
    assert (folder / "scalars.csv").is_file()
    assert f"mirror: csv run {expected.run_name} -> logs/csv/{expected.run_name}" in proc.stderr


def test_the_configured_logger_keeps_its_args(mirror_project):
    project, expected = mirror_project
    _params(project, {"name": "tensorboard", "args": {"log_dir": "logs/team-board"}})
    same = _mirror(project, "--logger", "tensorboard")
    assert same.returncode == 0, same.stderr
    assert (project / "logs" / "team-board" / expected.run_name).is_dir()
    assert "open it: tensorboard --logdir logs/team-board" in same.stderr
    other = _mirror(project, "--logger", "csv")  # the log_dir was TensorBoard's, not the CSV logger's
    assert other.returncode == 0, other.stderr
    assert (project / "logs" / "csv" / expected.run_name / "scalars.csv").is_file()
    assert not (project / "logs" / "team-board" / expected.run_name / "scalars.csv").exists()
