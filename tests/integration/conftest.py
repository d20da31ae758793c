"""Fixtures for the mirror tests: a run folder built from the contract, a real MLflow server."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.mirror_data import build_run_folder
from tests.projects import built_once, commit_all, copy_repo, make_project_copy, run


def mirror_free_port() -> int:
    """A 127.0.0.1 port with nothing listening on it (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mirror_project(tmp_path) -> tuple[Path, object]:
    """A project dir holding runs/ (train, validate, visualize) and what a mirror must show."""
    project = tmp_path / "project"
    runs, expected = build_run_folder(project)
    return project, expected


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (sqlite store, artifacts under ``root``); start/stop."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or mirror_free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> str:
        exe = shutil.which("mlflow", path=str(Path(sys.executable).parent))
        if exe is None:
            if importlib.util.find_spec("mlflow") is not None:
                pytest.fail("mlflow is installed but its `mlflow` command is not beside this Python")
            pytest.skip("mlflow server: the mlflow package is not installed here")
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            exe,
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # The tracking server itself, without MLflow 3's GenAI job runner (seven `huey` consumer
        # processes, each importing mlflow: ~8 s of CPU per start on 2 cores; reprokit runs no jobs).
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                # mlflow is installed (the command exists): a server that cannot start is a failure, never a skip.
                pytest.fail(
                    f"mlflow server exited with {self.proc.returncode}: {(self.root / 'server.log').read_text()[-500:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.uri
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mlflow server did not answer /health within {timeout:.0f} s")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server's own process group only
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="session")
def mirror_mlflow_server(tmp_path_factory) -> str:
    """A real `mlflow server` on 127.0.0.1 for the session; yields its URI."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    try:
        yield server.start()
    finally:
        server.stop()


# The sweep tests (test_sweep*.py): the default pipeline with small settings, run once and committed.
SWEEP_SMALL: dict = {
    "data": {"digits": {"n_source": 60}},
    "train": {"epochs": 1, "n_labels": 8},
    "visualize": {"n_queries": 2},
    "logger": {"strict": True},  # a mirror failure must fail the trial, not hide behind a warning
}


@pytest.fixture(scope="session")
def sweep_base(tmp_path_factory) -> Path:
    def build(repo: Path) -> None:
        make_project_copy(repo, SWEEP_SMALL)
        run(["dvc", "repro"], repo)
        commit_all(repo, "baseline run")

    return built_once(tmp_path_factory, "sweep", build).resolve()


@pytest.fixture
def sweep_copy(sweep_base, tmp_path) -> Path:
    return copy_repo(sweep_base, tmp_path / "repo")
