"""Fixtures for the mirror tests: a run folder built from the contract, a real MLflow server."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def mirror_mlflow_server(tmp_path_factory) -> str:
    """A real `mlflow server` on 127.0.0.1 (sqlite store, artifacts in tmp); yields its URI."""
    if shutil.which("mlflow", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mlflow server: the `mlflow` command is not installed beside this Python")
    root = tmp_path_factory.mktemp("mlflow_server")
    port = mirror_free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.skip(f"mlflow server exited with {proc.returncode}: {(root / 'server.log').read_text()[-500:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.skip("mlflow server did not answer /health within 90 s")
            time.sleep(0.5)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group only
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
