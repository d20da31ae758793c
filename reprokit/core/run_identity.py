"""A pipeline run's id and name, from the files its stages wrote under ``runs/``.

Pure functions of the run folder: the mirror names its logger run with them and the report
shows the same name, so a person finds the report's run in the logger under that name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reprokit.core.layout import RunsDir

__all__ = ["pipeline_run_id", "pipeline_run_name"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline_run_id(runs: RunsDir, train_run_id: str) -> str:
    """The pipeline run's id: the training run's id combined with what the later stages used and produced.

    Re-running validate alone with other params (``dvc exp run -S validate.distance=cosine``)
    changes its params record and its metrics, hence the id: a new logger run, the earlier one
    untouched. Replaying the same finished run again gives the same id: the same logger run.
    """
    parts = [f"train/run_id={train_run_id}"]
    for path in (
        runs.validate.params,
        runs.validate.metrics,
        runs.visualize.params,
        *sorted(runs.visualize.root.glob("*.png")),
    ):
        if path.is_file():
            parts.append(f"{path.relative_to(runs.root).as_posix()}={_digest(path)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def pipeline_run_name(train_run_name: str, run_id: str) -> str:
    """``<experiment that trained>-<pipeline id[:8]>``: the same name whenever this run is replayed."""
    prefix = train_run_name.rsplit("-", 1)[0] if "-" in train_run_name else "run"
    return f"{prefix}-{run_id[:8]}"
