"""Helpers for integration tests: a throwaway copy of this project as its own git + DVC repo."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.run_record import deep_update

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Small enough for seconds, big enough to be a retrieval task (used by the integration tests).
REDUCED_PARAMS: dict[str, Any] = {
    "data": {"digits": {"n_source": 240}},
    "train": {"epochs": 2, "n_labels": 16},
    "visualize": {"n_queries": 3},
}
# The experiment the session fixture `experiment_repo` runs on the committed reduced pipeline.
EXPERIMENT = "one-epoch"
EXPERIMENT_OVERRIDE = "train.epochs=1"


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `dvc`/stage subprocesses: this venv first on PATH, git identity set."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "GIT_AUTHOR_NAME": "reprokit tests",
            "GIT_AUTHOR_EMAIL": "tests@reprokit.invalid",
            "GIT_COMMITTER_NAME": "reprokit tests",
            "GIT_COMMITTER_EMAIL": "tests@reprokit.invalid",
            "DVC_NO_ANALYTICS": "1",
            "PYTHONHASHSEED": "0",
        }
    )
    env.pop("DVC_EXP_NAME", None)
    if extra:
        env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: float = 900):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or subprocess_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@contextlib.contextmanager
def paused(proc: subprocess.Popen) -> Iterator[None]:
    """Freeze a pipeline (SIGSTOP to its process group; start it with ``start_new_session=True``)
    while the test changes the world around it, say stops the logger's server.

    Without it "the server dies while training still runs" is a race between the training and
    the server's shutdown, which a loaded machine loses now and then.
    """
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (PROJECT_ROOT / f).is_file()]


def write_params(repo: Path, overrides: dict[str, Any]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_update(params, overrides), sort_keys=False))


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of a finished repo (git history, DVC cache, outputs), for a test to change."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def make_project_copy(dest: Path, params: dict[str, Any] | None = None, commit: bool = True) -> Path:
    """Copy the project's files (tracked + new, not ignored) into ``dest`` and make it a git repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        if rel.startswith(("runs/", "data/")) or rel == "dvc.lock":  # the project, not its committed results
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, target)
    if params:
        write_params(dest, params)
    run(["git", "init", "-q", "-b", "main"], dest)
    if commit:
        commit_all(dest, "project copy")
    return dest


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``<shared tmp>/<name>/repo``, made by ``build(repo)`` in the first worker that asks, then reused.

    A build that fails leaves no folder behind, so the next worker to ask builds it again (and
    fails the same way, with its own traceback) instead of reading half a repository.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if _is_xdist_worker(tmp_path_factory) else base  # pytest-of-<user>/pytest-N/
    root = shared / "built-once" / name
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        repo = root / "repo"
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            try:
                build(repo)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            (root / "done").touch()
    return repo


def _is_xdist_worker(tmp_path_factory) -> bool:
    # xdist gives each worker its own base temp (pytest-N/popen-gwK): their parent is common to all.
    return tmp_path_factory.getbasetemp().name.startswith("popen-gw")


def write_rgb_dataset(root: Path, image_size: int = 16, n_labels: int = 24, views: int = 3) -> None:
    """A small RGB image dataset in the OML format under ``root`` (``df.csv``, ``images/``): each label a
    4 x 4 colour pattern scaled to ``image_size``, its views jittered; the first two thirds of the
    labels train, the rest are validation queries and gallery items, categories warm and cold."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    scale = image_size // 4
    for label in range(n_labels):
        base = rng.integers(0, 255, size=(4, 4, 3))
        for view in range(views):
            img = np.kron(base, np.ones((scale, scale, 1))) + rng.normal(0, 12, size=(image_size, image_size, 3))
            path = f"images/{label:03d}_{view}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB").save(root / path)
            split = "train" if label < n_labels * 2 // 3 else "validation"
            flag = "" if split == "train" else "True"
            category = "warm" if label % 2 else "cold"
            rows.append(
                {
                    "label": label,
                    "path": path,
                    "split": split,
                    "is_query": flag,
                    "is_gallery": flag,
                    "category": category,
                }
            )
    pd.DataFrame(rows).to_csv(root / "df.csv", index=False)
