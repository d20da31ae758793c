"""ClearML: one task per replay, offline by default (its session zip is the run's record).

Args: ``project_name`` (default ``reprokit``), ``task_name`` (default the run name),
``offline_mode`` (default true; false needs ``CLEARML_API_ACCESS_KEY``/``CLEARML_API_SECRET_KEY``
and ``CLEARML_API_HOST`` in the environment). Offline sessions go under ``$CLEARML_CACHE_DIR``,
which defaults here to ``<home>/logs/clearml`` (not ``~/.clearml``) unless the user set it; the
report gives the ``offline-<id>.zip`` to upload later with ``Task.import_offline_session``.
A sweep trial's task goes to the sub-project ``<project_name>/<sweep>``.
Images and texts are debug samples (title/series from ``title/series`` tags); ClearML keeps one per
title, series and iteration, so a further medium under one key at one step is series ``<series>-<n>``.

Determinism: ``Task.init`` re-seeds random/numpy/torch (1337) unless told not to. We call
``Task.set_random_seed(None)`` first, disable its framework, TensorBoard, argparse, stream and
resource hooks, and still restore the three RNG states after ``init`` and ``close``.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprokit.mirror.base import MirrorBackend, RunInfo
from reprokit.mirror.runfolder import Media, Scalar
from reprokit.mirror.tags import flat_tags, key_value_tags

if TYPE_CHECKING:
    from clearml import Logger

__all__ = ["ClearMLBackend", "RngState"]


class RngState:
    """Snapshot of Python, numpy and (if imported) torch RNG states, restorable."""

    def __init__(self) -> None:
        self.py = random.getstate()
        np = sys.modules.get("numpy")
        self.np = np.random.get_state() if np is not None else None
        torch = sys.modules.get("torch")
        self.torch = torch.get_rng_state() if torch is not None else None

    def restore(self) -> None:
        random.setstate(self.py)
        if self.np is not None:
            sys.modules["numpy"].random.set_state(self.np)
        if self.torch is not None:
            sys.modules["torch"].set_rng_state(self.torch)


# Keys missing from this dict would default to True. detect_repository=False also matters for
# liveness: its background `git`/`hg` subprocess can hang when forked from a threaded process
# (seen under pytest on the second task of a process); the run folder already records git state.
_NO_HOOKS = {
    k: False
    for k in (
        "matplotlib",
        "tensorflow",
        "tensorboard",
        "pytorch",
        "xgboost",
        "scikit",
        "fastai",
        "lightgbm",
        "hydra",
        "detect_repository",
        "tfdefines",
        "joblib",
        "megengine",
        "catboost",
        "gradio",
    )
}


def _title_series(tag: str) -> tuple[str, str]:
    title, _, series = tag.rpartition("/")
    return (title, series) if title else (tag, tag)


def _media_title_series(media: Media) -> tuple[str, str]:
    """ClearML keeps one debug sample per (title, series, iteration): a further medium under one key at
    one step goes to series ``<series>-<n>`` under the same title (``val/batch`` -> ``val`` / ``batch-1``,
    ``grid`` -> ``grid`` / ``grid-1``), beside the first one."""
    title, series = _title_series(media.tag)
    return title, series if media.occurrence == 0 else f"{series}-{media.occurrence}"


# Set in os.environ by Task.set_offline / Task.init themselves and left there after close(): an offline
# mode and a "master process" id that later ClearML use in this process, and every child process,
# would inherit. Put back as they were once the task is closed.
_LIBRARY_ENV = ("CLEARML_OFFLINE_MODE", "TRAINS_OFFLINE_MODE", "CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID")


class ClearMLBackend(MirrorBackend):
    name = "clearml"
    allowed_args = {
        "project_name": "ClearML project (default reprokit)",
        "task_name": "task name (default the run name)",
        "offline_mode": "true (default): write an offline session zip, no server needed",
    }

    def start(self, run: RunInfo) -> None:
        self.set_env_default("CLEARML_CACHE_DIR", str(run.home_dir / "logs" / "clearml"))
        self.env_before = {k: os.environ.get(k) for k in _LIBRARY_ENV}
        self.rng = RngState()
        from clearml import Task  # imported here: it reads CLEARML_CACHE_DIR

        self.offline = bool(self.args.get("offline_mode", True))
        Task.set_offline(self.offline)
        Task.set_random_seed(None)
        try:
            project = str(self.args.get("project_name", "reprokit"))
            self.task: Task = Task.init(
                project_name=f"{project}/{run.sweep}" if run.sweep else project,  # a sweep: its own sub-project
                task_name=str(self.args.get("task_name", run.run_name)),
                reuse_last_task_id=False,
                auto_connect_frameworks=dict(_NO_HOOKS),
                auto_connect_arg_parser=False,
                auto_connect_streams=False,
                auto_resource_monitoring=False,
            )
        finally:
            self.rng.restore()
        self.logger: Logger = self.task.get_logger()
        self.run = run

    def log_params(self, params: Mapping[str, Any]) -> None:
        if params:
            self.task.connect(dict(params), name="config")

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:
        self.task.add_tags(flat_tags(user_tags, key_values))
        props = key_value_tags(self.run.run_id, self.run.run_name, user_tags, key_values)
        self.task.set_user_properties(**props)

    def log_scalars(self, scalars: list[Scalar]) -> None:
        for s in scalars:
            title, series = _title_series(s.tag)
            self.logger.report_scalar(title, series, s.value, iteration=s.step)

    def log_image(self, image: Media) -> None:
        title, series = _media_title_series(image)
        self.logger.report_image(title, series, iteration=image.step, local_path=str(image.path))

    def log_text(self, text: Media) -> None:
        # report_media keeps the file as a debug sample; report_text would print it to stdout.
        title, series = _media_title_series(text)
        self.logger.report_media(title, series, iteration=text.step, local_path=str(text.path), file_extension=".txt")

    def log_artifact(self, name: str, path: Path) -> None:
        self.task.upload_artifact(name, artifact_object=path, wait_on_upload=True)

    @classmethod
    def how_to_open(cls, where: Mapping[str, Any]) -> str | None:
        zipped = where.get("offline_zip")
        if zipped:  # an offline session: uploaded to a server later, then seen in its web app
            return f"upload it: python -c \"from clearml import Task; Task.import_offline_session('{zipped}')\""
        return "open the task in the ClearML web app"

    def finish(self) -> dict[str, Any]:
        try:
            folder = self.task.get_offline_mode_folder() if self.offline else None
            task_id = self.task.id
            self.task.close()
        finally:
            self._cleanup()
        out: dict[str, Any] = {"logger_run_id": task_id, "run_name": self.run.run_name}
        if folder is not None:
            out["offline_zip"] = str(Path(folder).with_suffix(".zip"))
        return out

    def _cleanup(self) -> None:
        if hasattr(self, "rng"):
            self.rng.restore()
        for key, value in getattr(self, "env_before", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def abort(self) -> None:
        try:
            if hasattr(self, "task"):
                self.task.close()
        finally:
            self._cleanup()
