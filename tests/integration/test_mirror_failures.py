"""Mirror failures tell the truth: timeouts, bugs in reprokit's own backends, disk errors, the environment.

No mocks: the backends here are the real TensorBoard and CSV backends, subclassed in this module
to block on a gate, to set a variable for their library, or to carry a bug, and run through
``mirror_run``'s ``backends`` argument. Disk errors are the kernel's own (``/dev/full``, a log
folder below a regular file). For MLflow: a socket that accepts and never answers, and a proxy in
front of a real `mlflow server` that stops answering when the run is being finished.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reprokit.core.config import LoggerConfig
from reprokit.core.errors import MirrorError
from reprokit.core.fileio import read_json
from reprokit.mirror import BACKENDS, mirror_run
from reprokit.mirror.csv_backend import CsvBackend
from reprokit.mirror.tensorboard import TensorBoardBackend
from tests.integration import mirror_readers as readers

ENV = "REPROKIT_TEST_BACKEND_ENV"
GATE = threading.Event()  # a blocking backend waits for it; the test opens it
BLOCKED = threading.Event()  # set by a blocking backend when it starts waiting


def _block() -> None:
    BLOCKED.set()
    assert GATE.wait(60), "the test never opened the gate"


class EnvTensorBoard(TensorBoardBackend):
    """The real TensorBoard backend, setting a variable for its library the way MLflow's backend does."""

    def start(self, run):
        self.set_env_default(ENV, "set-by-backend")
        super().start(run)


class FinishBlocks(EnvTensorBoard):
    def finish(self):
        _block()
        return super().finish()


class ScalarsBlock(EnvTensorBoard):
    def log_scalars(self, scalars):
        _block()
        super().log_scalars(scalars)


class StartBlocksThenSetsEnv(TensorBoardBackend):
    """Sets its variable only after the deadline passed: must not leak either."""

    def start(self, run):
        _block()
        self.set_env_default(ENV, "set-late")
        super().start(run)


class BuggyTensorBoard(EnvTensorBoard):
    def log_image(self, image):
        return {}[image.tag]  # a bug: KeyError


class BuggyCsv(CsvBackend):
    def log_text(self, text):
        return text.text + 1  # a bug: TypeError


class DiskFullCsv(CsvBackend):
    def log_artifact(self, name, path):
        shutil.copyfile(path, "/dev/full")  # the kernel's ENOSPC, as on a full disk


def _backends(cls: type) -> dict:
    """The registry with ``cls`` (defined here) in place of the backend it extends."""
    name = "csv" if issubclass(cls, CsvBackend) else "tensorboard"
    return {**BACKENDS, name: dataclasses.replace(BACKENDS[name], module=__name__, cls=cls.__name__)}


def _join_workers(timeout: float = 60) -> None:
    """Wait for replays abandoned at a deadline (their worker threads) to end."""
    for t in threading.enumerate():
        if t.name.startswith("reprokit-mirror-"):
            t.join(timeout)
            assert not t.is_alive(), f"{t.name} still running after {timeout} s"


def _staging(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "-staging-" in p.name] if folder.is_dir() else []


@pytest.fixture
def gate(monkeypatch):
    """A closed gate; opened (and every abandoned replay joined) at the end, whatever happened."""
    monkeypatch.delenv(ENV, raising=False)
    GATE.clear()
    BLOCKED.clear()
    try:
        yield GATE
    finally:
        GATE.set()
        _join_workers()


# -- timeouts -----------------------------------------------------------------------------------


def test_a_timeout_in_finish_is_reported_as_unknown_may_be_partially_published(gate, mirror_project, capsys):
    project, exp = mirror_project
    logger = LoggerConfig(name="tensorboard", timeout_s=3)
    report = mirror_run(logger=logger, project_dir=project, backends=_backends(FinishBlocks))
    assert BLOCKED.is_set(), report["error"]  # the replay did reach finish() within the deadline
    assert not report["ok"] and report["published"] == "unknown", report
    assert "timeout_s=3" in report["error"] and "may be partially published" in report["error"], report["error"]
    assert read_json(project / "runs/mirror/report.json")["published"] == "unknown"
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "may be partially published" in warning
    # While the late worker is still inside finish(): nothing half-written under logs/, variable restored.
    assert not _staging(project / "logs") and ENV not in os.environ
    gate.set()
    _join_workers()
    # It did publish in the end: that is why the report could not say "no".
    (run_dir,) = (project / "logs/tensorboard").iterdir()
    assert run_dir.name == exp.run_name
    readers.assert_contract(readers.read_tensorboard({"log_dir": run_dir}), exp)
    assert not _staging(project / "logs") and not _staging(project / ".reprokit")
    assert ENV not in os.environ


def test_a_timeout_while_logging_is_reported_as_not_published(gate, mirror_project):
    project, _ = mirror_project
    report = mirror_run(
        logger=LoggerConfig(name="tensorboard", timeout_s=3), project_dir=project, backends=_backends(ScalarsBlock)
    )
    assert BLOCKED.is_set() and not report["ok"], report
    assert report["published"] == "no" and "partially" not in report["error"], report["error"]
    assert report["counts"]["scalars"] == 0 and report["counts"]["params"] > 0
    assert not _staging(project / "logs") and ENV not in os.environ
    gate.set()
    _join_workers()
    # The late worker is stopped at its next call: its staging folder is discarded, nothing published.
    assert not any((project / "logs/tensorboard").iterdir())
    assert not _staging(project / "logs") and not _staging(project / ".reprokit")
    assert ENV not in os.environ


def test_a_silent_mlflow_server_is_cut_by_the_deadline_not_published_env_restored(mirror_project, monkeypatch):
    """A server that accepts connections and never answers: bounded by logger.timeout_s."""
    pytest.importorskip("mlflow")
    project, _ = mirror_project
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
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
        assert not report["ok"] and report["published"] == "no" and elapsed < 10, (elapsed, report)
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    _join_workers()
    assert not (project / "logs").exists() or not _staging(project / "logs")


# -- the environment ----------------------------------------------------------------------------


def test_variables_set_for_a_backend_are_restored_after_success_failure_and_timeout(gate, mirror_project, monkeypatch):
    project, _ = mirror_project
    ok = mirror_run(logger=LoggerConfig(name="tensorboard"), project_dir=project, backends=_backends(EnvTensorBoard))
    assert ok["ok"] and ENV not in os.environ
    (project / "not-a-folder").write_text("a file where the log folder should go")
    failed = mirror_run(
        logger=LoggerConfig(name="tensorboard", args={"log_dir": "not-a-folder/tb"}),
        project_dir=project,
        backends=_backends(EnvTensorBoard),
    )
    assert not failed["ok"] and failed["error"] and ENV not in os.environ
    late = mirror_run(
        logger=LoggerConfig(name="tensorboard", timeout_s=1),
        project_dir=project,
        backends=_backends(StartBlocksThenSetsEnv),
    )
    assert not late["ok"] and ENV not in os.environ
    gate.set()
    _join_workers()
    assert ENV not in os.environ  # set_env_default after the replay ended sets nothing
    # A value the user set is theirs: used, and left as it was.
    monkeypatch.setenv(ENV, "the-users")
    again = mirror_run(logger=LoggerConfig(name="tensorboard"), project_dir=project, backends=_backends(EnvTensorBoard))
    assert again["ok"]
    assert os.environ[ENV] == "the-users"


# -- reprokit's own local backends: a bug fails, a disk error is reported -------------------------


@pytest.mark.parametrize("cls", [BuggyTensorBoard, BuggyCsv], ids=["tensorboard", "csv"])
def test_a_bug_in_a_local_backend_fails_even_when_not_strict(cls, mirror_project, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    project, _ = mirror_project
    name = "csv" if cls is BuggyCsv else "tensorboard"
    with pytest.raises(MirrorError, match=f"{name} backend failed: (KeyError|TypeError)") as info:
        mirror_run(logger=LoggerConfig(name=name, strict=False), project_dir=project, backends=_backends(cls))
    assert isinstance(info.value.__cause__, (KeyError, TypeError))
    report = read_json(project / "runs/mirror/report.json")  # recorded all the same
    assert not report["ok"] and report["published"] == "no" and report["error"]
    assert not (project / "logs" / name).exists() or not any((project / "logs" / name).iterdir())
    assert not _staging(project / "logs") and not _staging(project / ".reprokit") and ENV not in os.environ


@pytest.mark.parametrize("case", ["disk-full", "log-dir-below-a-file"])
def test_a_disk_error_in_a_local_backend_is_reported_like_any_logger_failure(case, mirror_project, capsys):
    project, _ = mirror_project
    if case == "disk-full":
        logger, backends = LoggerConfig(name="csv"), _backends(DiskFullCsv)
    else:
        (project / "logs").mkdir()
        (project / "logs" / "csv").write_text("a file where the log folder should go")
        logger, backends = LoggerConfig(name="csv"), BACKENDS
    report = mirror_run(logger=logger, project_dir=project, backends=backends)  # no raise: strict is false
    assert not report["ok"] and report["published"] == "no"
    want = "OSError: [Errno 28] No space left on device" if case == "disk-full" else "FileExistsError: [Errno 17]"
    assert report["error"].startswith(want), report["error"]
    assert read_json(project / "runs/mirror/report.json")["error"] == report["error"]
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "into csv failed" in warning
    assert not _staging(project / "logs") and not _staging(project / ".reprokit")
    with pytest.raises(MirrorError, match="into csv failed"):
        mirror_run(logger=dataclasses.replace(logger, strict=True), project_dir=project, backends=backends)


# -- MLflow: a server that stops answering while the run is being finished ----------------------


class _HoldingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``upstream``, except ``hold`` (a path prefix): that one is never answered
    until ``release`` is set, like a server that dies or hangs while a client finishes its run."""

    daemon_threads = True

    def __init__(self, upstream: str, hold: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream, self.hold = upstream, hold
        self.held, self.release = threading.Event(), threading.Event()
        self.uri = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, name="mlflow-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _HoldingProxy

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith(self.server.hold):
            self.server.held.set()
            self.server.release.wait(120)
            self.close_connection = True
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        url = self.server.upstream + self.path
        request = urllib.request.Request(url, data=body, headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                status, reply, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, reply, data = err.code, err.headers, err.read()
        self.send_response(status)
        for k, v in reply.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deadline", "request-timeout"])
def test_mlflow_server_hanging_while_the_run_is_finished_is_unknown(
    how, mirror_project, mirror_mlflow_server, monkeypatch, tmp_path
):
    """Everything reached the server; only marking the run finished got no answer. ``deadline``: the
    replay's deadline passes first; ``request-timeout``: MLflow's own request timeout ends the call."""
    from mlflow.tracking import MlflowClient

    project, exp = mirror_project
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    if how == "request-timeout":
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # the user's own value, which the backend keeps
    else:
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    experiment = f"hanging-{how}"
    with _HoldingProxy(mirror_mlflow_server, "/api/2.0/mlflow/runs/update") as proxy:
        logger = LoggerConfig(
            name="mlflow",
            args={"tracking_uri": proxy.uri, "experiment_name": experiment},
            timeout_s=20 if how == "deadline" else 60,
        )
        report = mirror_run(logger=logger, project_dir=project)
        assert proxy.held.is_set(), report["error"]  # the replay reached finish()
        assert not report["ok"] and report["published"] == "unknown", report
        assert "may be partially published" in report["error"], report["error"]
        if how == "deadline":
            assert "timeout_s=20" in report["error"]
        # The server answers again (held request dropped, nothing held any more): the late worker ends.
        proxy.hold = "/nothing-held"
        proxy.release.set()
        _join_workers()
        # What "unknown" stands for here: the run is on the server with everything, not marked finished.
        client = MlflowClient(tracking_uri=mirror_mlflow_server)
        (run,) = client.search_runs(
            [client.get_experiment_by_name(experiment).experiment_id],
            filter_string=f"tags.`reprokit.run_id` = '{exp.run_id}'",
        )
        assert run.info.status == "RUNNING"
        where = {"tracking_uri": mirror_mlflow_server, "logger_run_id": run.info.run_id}
        readers.assert_contract(readers.read_mlflow(where, tmp_path / "dl"), exp)
        # Replayed (through the same address; MLflow caches a run's artifact location per process): the
        # same run, now finished, still without a duplicate point.
        again = mirror_run(logger=logger, project_dir=project)
        assert again["ok"] and again["where"]["logger_run_id"] == run.info.run_id, again
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        readers.assert_contract(readers.read_mlflow(where, tmp_path / "dl-again"), exp)
