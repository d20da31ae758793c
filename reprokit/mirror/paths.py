"""Where default logger folders go, and rewriting a run's folder without duplicating events.

Default folders live under ``<home>/logs/`` where ``home`` is the project dir, except under
``dvc exp run --queue``/``--temp``: DVC runs those in a temporary copy of the repo at
``<repo>/.dvc/tmp/exps/...``, which is deleted afterwards. There ``home`` is the original
``<repo>``, so queued experiments still appear side by side in ``<repo>/logs/`` (their run ids
keep them apart). A relative path given in ``logger.args`` resolves against ``home`` too.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from reprokit.core.fileio import read_json, replace_dir, staging_dir_in, write_json

__all__ = ["home_dir", "resolve", "run_folder", "staging_dir", "publish", "discard", "mark_live", "live_folder"]

_QUEUE_MARK = "/.dvc/tmp/exps/"
MARKER = "reprokit_run.json"


def home_dir(project_dir: str | Path) -> Path:
    path = Path(project_dir).resolve()
    text = path.as_posix()
    if _QUEUE_MARK in text:
        return Path(text.split(_QUEUE_MARK, 1)[0])
    return path


def resolve(home: Path, value: str | os.PathLike) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else home / path


def run_folder(root: Path, run_name: str, run_id: str) -> Path:
    """``root/<run_name>``, unless that folder belongs to another run id (then ``-<run_id[:8]>``)."""
    folder = root / run_name
    marker = folder / MARKER
    if marker.is_file():
        try:
            owner = read_json(marker).get("run_id")
        except (OSError, ValueError):
            owner = None
        if owner not in (None, run_id):
            return root / f"{run_name}-{run_id[:8]}"
    return folder


STAGING = ".reprokit/staging"  # under the home dir; git-ignored
STALE_S = 24 * 3600


def staging_dir(final: Path, home: Path) -> Path:
    """An empty folder on the same filesystem as ``final``, outside the logger's folder.

    Outside, so that ``tensorboard --logdir logs/...`` never shows a half-written run, and a
    replay abandoned at a timeout leaves nothing under ``logs/``: staging lives in
    ``<home>/.reprokit/staging/`` (beside ``final``'s parent only when that is another filesystem,
    where a rename could not move it). Staging folders older than a day are removed here.
    """
    base = home / STAGING
    base.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(base).st_dev != os.stat(final.parent).st_dev:
        base = final.parent.parent
    _remove_stale(base)
    return staging_dir_in(base, f".{final.parent.name}-staging-")


def _remove_stale(base: Path) -> None:
    now = time.time()
    for old in base.glob(".*-staging-*"):
        try:
            if now - old.stat().st_mtime > STALE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def publish(staging: Path, final: Path, run_id: str, run_name: str) -> Path:
    write_json(staging / MARKER, {"run_id": run_id, "run_name": run_name})
    return replace_dir(staging, final)


def mark_live(folder: Path, run_id: str, run_name: str) -> None:
    """Mark ``folder`` as the run a training (``run_id``) logs into live, not yet adopted by a pipeline run."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / MARKER).is_file():
        write_json(folder / MARKER, {"run_id": run_id, "run_name": run_name, "live": True})


def live_folder(root: Path, run_name: str, run_id: str) -> Path | None:
    """The folder under ``root`` a training (``run_id``) filled live, while no pipeline run has adopted it."""
    folder = run_folder(root, run_name, run_id)
    try:
        marker = read_json(folder / MARKER) if (folder / MARKER).is_file() else {}
    except (OSError, ValueError):
        return None
    return folder if marker.get("run_id") == run_id and marker.get("live") is True else None


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
