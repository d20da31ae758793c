"""The live mirror never holds training: sends return at once, a failing logger warns once, close is bounded.

Real threads and real writers of our own (a LiveWriter that fails, one that waits on an event); no
timing is asserted: "does not block" is shown by ``send`` returning while the writer is held.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reprokit.core.config import LoggerConfig
from reprokit.core.errors import ConfigError, MissingBackendError
from reprokit.core.scalars import Scalar
from reprokit.core.stage_runner import REPRODUCING_ENV
from reprokit.mirror.base import LiveWriter, RunInfo
from reprokit.mirror.live import LiveMirror, open_live
from reprokit.mirror.registry import BACKENDS, BackendSpec

RUN = RunInfo("0123456789abcdef0123456789abcdef", "run-01234567", Path("."), 5.0)


class Recording(LiveWriter):
    def __init__(self, args=None, fail_on: int | None = None, hold: threading.Event | None = None) -> None:
        super().__init__(args or {})
        self.batches: list[list[Scalar]] = []
        self.closed: list[bool] = []
        self.fail_on, self.hold = fail_on, hold
        self.entered = threading.Event()
        self.raised = threading.Event()

    def start(self, run: RunInfo) -> None:
        self.run = run

    def write(self, scalars: list[Scalar]) -> None:
        self.entered.set()
        if self.hold is not None:
            self.hold.wait()
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            self.raised.set()
            raise ConnectionError("connection refused")
        self.batches.append(list(scalars))

    def close(self, finished: bool) -> None:
        self.closed.append(finished)


def _values(n: int, step: int = 0) -> list[Scalar]:
    return [Scalar("train/loss", step + i, 1.0 / (i + 1), 1000.0 + i) for i in range(n)]


def test_everything_sent_arrives_in_order_and_the_run_is_closed(capsys):
    writer = Recording()
    live = LiveMirror(writer, RUN, "recording")
    for epoch in range(3):
        live.send(_values(4, step=4 * epoch))
        live.send(_values(1, step=4 * epoch + 3), epoch_end=True)
    live.close(finished=True, timeout_s=30)
    sent = [s for batch in writer.batches for s in batch]
    assert sent == [s for e in range(3) for s in _values(4, 4 * e) + _values(1, 4 * e + 3)]
    assert writer.closed == [True] and writer.run is RUN and live.failed is None
    assert "warning" not in capsys.readouterr().err


def test_a_failing_logger_warns_once_and_send_never_raises(capsys):
    writer = Recording(fail_on=0)
    live = LiveMirror(writer, RUN, "recording")
    live.send(_values(2), epoch_end=True)  # the first batch fails
    assert writer.raised.wait(30)
    for step in range(2, 40):
        live.send(_values(1, step=step), epoch_end=True)  # dropped, silently: training goes on
    live.close(finished=True, timeout_s=30)
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 1, err
    assert "live logging to recording stopped (ConnectionError: connection refused)" in warnings[0]
    assert "the mirror stage fills the logger run in" in warnings[0]
    assert writer.batches == [] and writer.closed == [False]


def test_send_returns_while_the_logger_is_stuck_and_close_is_bounded(capsys):
    hold = threading.Event()
    writer = Recording(hold=hold)
    live = LiveMirror(writer, RUN, "recording")
    live.send(_values(1), epoch_end=True)
    assert writer.entered.wait(30)  # the worker is inside write(), held
    for step in range(1, 1000):
        live.send(_values(1, step=step), epoch_end=True)  # returns although the logger does not answer
    live.close(finished=True, timeout_s=0.5)
    assert "no answer within logger.timeout_s=0.5 s" in capsys.readouterr().err
    hold.set()  # let the daemon thread end


def test_open_live_picks_the_backend_writer_or_none(tmp_path, monkeypatch):
    monkeypatch.delenv(REPRODUCING_ENV, raising=False)
    live = open_live(LoggerConfig(name="tensorboard"), RUN.run_id, RUN.run_name, tmp_path)
    try:
        assert type(live.writer).__name__ == "TensorBoardLive"
    finally:
        live.close(True, 30)
    assert (tmp_path / "logs/tensorboard/run-01234567/reprokit_run.json").is_file()
    # Backends without a live writer get the whole run from the mirror stage.
    assert open_live(LoggerConfig(name="csv"), RUN.run_id, RUN.run_name, tmp_path) is None
    # A reproduction never publishes to a logger.
    monkeypatch.setenv(REPRODUCING_ENV, "1")
    assert open_live(LoggerConfig(name="tensorboard"), RUN.run_id, RUN.run_name, tmp_path) is None


def test_open_live_rejects_a_bad_logger_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv(REPRODUCING_ENV, raising=False)
    with pytest.raises(ConfigError, match="unknown key"):
        open_live(LoggerConfig(name="tensorboard", args={"logdir": "x"}), RUN.run_id, RUN.run_name, tmp_path)
    missing = {"tensorboard": BackendSpec("tensorboard", "tensorboard", "TensorBoardBackend", "no_such_pkg", "x")}
    with pytest.raises(MissingBackendError, match="'no_such_pkg' package is not installed") as err:
        open_live(LoggerConfig(name="tensorboard"), RUN.run_id, RUN.run_name, tmp_path, backends=missing)
    assert err.value.hint == 'pip install "reprokit[x]"'
    assert BACKENDS["tensorboard"].package == "tensorboard"


def test_the_first_pipeline_run_adopts_the_live_folder_a_later_one_gets_its_own(tmp_path):
    """TensorBoard: train's live folder (the training's name) becomes the pipeline run's, written whole;
    another pipeline run on the same training then gets a folder of its own, the first untouched."""
    from reprokit.mirror import mirror_run
    from reprokit.mirror.tensorboard import TensorBoardLive
    from tests.integration import mirror_readers as readers
    from tests.integration.mirror_data import RUN_ID, RUN_NAME, build_run_folder

    project = tmp_path / "project"
    runs, exp = build_run_folder(project)
    writer = TensorBoardLive({})
    writer.start(RunInfo(RUN_ID, RUN_NAME, project, 5.0))
    writer.write(
        [
            Scalar(tag, step, value, 1000.0 + step)
            for tag, points in exp.scalars.items()
            if tag.startswith("train")
            for step, value in points.items()
        ]
    )
    writer.close(True)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    live = EventAccumulator(str(project / "logs/tensorboard" / RUN_NAME), size_guidance={"scalars": 0})
    live.Reload()
    assert [(e.step, e.wall_time) for e in live.Scalars("train/loss")] == [
        (step, 1000.0 + step) for step in sorted(exp.scalars["train/loss"])
    ]

    first = mirror_run(logger=LoggerConfig(), project_dir=project)
    assert first["ok"], first["error"]
    assert (first["run_id"], first["where"]["adopted_live_run"]) == (exp.run_id, RUN_NAME)
    folder = Path(first["where"]["log_dir"])
    assert [p.name for p in (project / "logs/tensorboard").iterdir()] == [folder.name] == [exp.run_name]
    view = readers.read_tensorboard(first["where"])
    readers.assert_contract(view, exp)  # every event once, the live ones included
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1

    (runs / "visualize" / "params.yaml").write_text("visualize:\n  n_queries: 2\n")  # another pipeline run
    before = sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*") if p.is_file())
    second = mirror_run(logger=LoggerConfig(), project_dir=project)
    assert second["ok"] and second["run_id"] != first["run_id"] and "adopted_live_run" not in second["where"]
    assert sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*") if p.is_file()) == before
    replayed = readers.read_tensorboard(second["where"]).scalars["train/loss"]  # complete: train replayed
    assert replayed == pytest.approx(exp.scalars["train/loss"], rel=1e-6)
