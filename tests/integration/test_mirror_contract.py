"""One contract over every mirror backend: the same assertions, read back with each backend's client.

No mocks: TensorBoard event files, CSV files, a real `mlflow server` on 127.0.0.1, ClearML's
offline session zip, W&B's offline record file. A backend whose package is missing is skipped
with the reason. Also here: failure handling (dead and silent MLflow servers), the ClearML
determinism guard, secrets, and replay idempotence.
"""

from __future__ import annotations

import importlib.util
import random
import socket
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
from tests.integration.mirror_data import RUN_ID, build_run_folder

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


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def assert_contract(view: readers.View, exp) -> None:
    assert not view.duplicates, f"duplicate points: {view.duplicates[:5]}"
    for tag, points in exp.scalars.items():
        assert tag in view.scalars, f"scalar {tag!r} missing; got {sorted(view.scalars)}"
        assert set(view.scalars[tag]) == set(points), f"{tag}: steps {sorted(view.scalars[tag])} != {sorted(points)}"
        for step, value in points.items():
            assert view.scalars[tag][step] == pytest.approx(value, rel=1e-6), (tag, step)
    for key, value in exp.params.items():
        assert key in view.params, f"param {key!r} missing; got {sorted(view.params)}"
        got = view.params[key]
        if _number(value) is not None:
            assert _number(got) == pytest.approx(float(value)), (key, got)
        else:
            assert str(got) == value, (key, got)
    assert "abc123" not in repr(view.params)
    assert set(exp.user_tags) <= view.user_tags, view.user_tags
    for key, value in exp.auto_tags.items():
        assert view.key_values.get(key) == value, (key, view.key_values)
    assert view.key_values.get("reprokit.run_id") == exp.run_id
    assert view.key_values.get("train_run_id") == RUN_ID
    for tag, sizes in exp.images.items():
        assert view.images.get(tag) == sizes, (tag, view.images)
    for tag, texts in exp.texts.items():
        assert view.texts.get(tag) == texts, (tag, view.texts)
    assert exp.artifacts <= view.artifacts, sorted(exp.artifacts - view.artifacts)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract(backend, mirror_project, request, tmp_path):
    _require(backend)
    project, exp = mirror_project
    logger = LoggerConfig(name=backend, args=_args(backend, request), timeout_s=120)
    report = mirror_run(runs_dir="runs", logger=logger, tags=("extra-tag",), project_dir=project)

    assert report["ok"], report["error"]
    assert report == read_json(project / "runs" / "mirror" / "report.json")
    assert (report["run_id"], report["run_name"], report["missing"]) == (exp.run_id, exp.run_name, [])
    n_scalars = sum(len(p) for p in exp.scalars.values())
    assert report["counts"]["scalars"] == n_scalars
    assert report["counts"]["images"] == sum(len(v) for v in exp.images.values())
    assert report["counts"]["artifacts"] == len(exp.artifacts)
    exp.user_tags.append("extra-tag")
    assert_contract(_read(backend, report, tmp_path), exp)
    if backend in ("tensorboard", "csv", "clearml", "wandb"):
        # default folders are under the project's logs/, never in ~ or the cwd
        where = next(v for k, v in report["where"].items() if k in ("log_dir", "offline_zip", "run_dir"))
        assert Path(where).is_relative_to(project.resolve() / "logs"), where


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] in ("tensorboard", "csv", "mlflow")])
def test_replaying_again_does_not_duplicate(backend, mirror_project, request, tmp_path):
    _require(backend)
    project, exp = mirror_project
    logger = LoggerConfig(name=backend, args=_args(backend, request) | ({"experiment_name": "replay"} if backend == "mlflow" else {}))
    first = mirror_run(logger=logger, project_dir=project)
    second = mirror_run(logger=logger, project_dir=project)
    assert first["ok"] and second["ok"], (first["error"], second["error"])
    assert first["where"] == second["where"]  # same folder / same MLflow run
    assert_contract(_read(backend, second, tmp_path), exp)


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


def test_silent_mlflow_server_is_cut_by_the_deadline(mirror_project):
    """A server that accepts connections and never answers: bounded by logger.timeout_s."""
    _require("mlflow")
    project, _ = mirror_project
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        report = mirror_run(
            logger=LoggerConfig(name="mlflow", args={"tracking_uri": f"http://127.0.0.1:{port}"}, timeout_s=3),
            project_dir=project,
        )
        elapsed = time.monotonic() - t0
    assert not report["ok"] and elapsed < 10, (elapsed, report["error"])


@pytest.mark.slow
def test_mlflow_filled_in_after_the_server_was_down(mirror_project, mirror_mlflow_server, tmp_path):
    project, exp = mirror_project
    down = mirror_run(
        logger=LoggerConfig(name="mlflow", args={"tracking_uri": f"http://127.0.0.1:{mirror_free_port()}"}, timeout_s=20),
        project_dir=project,
    )
    assert not down["ok"]
    up = mirror_run(
        logger=LoggerConfig(name="mlflow", args={"tracking_uri": mirror_mlflow_server, "experiment_name": "later"}),
        project_dir=project,
    )
    assert up["ok"], up["error"]
    assert_contract(readers.read_mlflow(up["where"], tmp_path / "dl"), exp)


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
