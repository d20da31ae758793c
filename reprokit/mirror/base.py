"""The small protocol every mirror backend implements.

Only ``start`` and ``finish`` are abstract; everything else defaults to doing nothing, so a
backend implements the kinds it can hold. The replay (``reprokit.mirror.replay``) calls, in
order: ``start``, ``log_params``, ``log_tags``, ``log_scalars`` (all of them, sorted by step),
``log_image``/``log_text`` (sorted by step), ``log_artifact``, ``finish``; ``abort`` after a
failure. One instance mirrors one run, in one thread.

A backend that can receive a training's values while it trains names its ``live`` writer
(:class:`LiveWriter`); its ``start`` then *adopts* the logger run the training filled live
(``RunInfo.live_id``), when the pipeline run has no logger run yet and that one is still there: the
first pipeline run on a training completes the run its training logged into, under the pipeline
run's id and name; a later one (another validation of the same model) gets a run of its own.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from reprokit.mirror.runfolder import Media, Scalar

__all__ = ["MirrorBackend", "RunInfo"]


class RunInfo:
    """Who the logger run is: the pipeline run's id and readable name, plus where to put files.

    ``sweep``: the sweep a trial's run belongs to (``logger.sweep.name``), which the backends group
    their runs by: a folder ``<root>/<sweep>/`` (TensorBoard, CSV), a parent run (MLflow), the run
    group (W&B), a sub-project (ClearML). None for a run outside a sweep.

    ``live_id``/``live_name``: the logger run the train stage filled live (the training's id and
    name), for a live backend's ``start`` to adopt.
    """

    def __init__(
        self,
        run_id: str,
        run_name: str,
        home_dir: Path,
        timeout_s: float,
        sweep: str | None = None,
        live_id: str | None = None,
        live_name: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.home_dir = home_dir  # project dir whose logs/ hold the default folders (see paths.py)
        self.timeout_s = timeout_s
        self.sweep = sweep
        self.live_id = live_id
        self.live_name = live_name


class MirrorBackend(ABC):
    name: ClassVar[str]
    # arg name -> one-line description; anything else in logger.args is a ConfigError.
    allowed_args: ClassVar[Mapping[str, str]] = {}
    # True when images/texts are copied beside the logger's files rather than held natively.
    media_as_files: ClassVar[bool] = False
    # The writer that receives a training's values while it trains; None: the mirror stage alone.
    live: ClassVar[type[LiveWriter] | None] = None

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.args = dict(args)
        self.notes: list[str] = []  # one-line remarks the replay copies into the report
        self._env_set: list[str] = []
        self._env_lock = threading.Lock()
        self._env_restored = False

    def set_env_default(self, key: str, value: str) -> None:
        """Set ``key`` for the backend's library unless the user already did; the replay restores it.

        The replay calls :meth:`restore_env` itself, whatever happened (a timeout included), so a
        variable set for one backend never leaks into the rest of the process. After that (a worker
        still running past the deadline) this sets nothing.
        """
        with self._env_lock:
            if not self._env_restored and key not in os.environ:
                os.environ[key] = value
                self._env_set.append(key)

    def restore_env(self) -> None:
        with self._env_lock:
            self._env_restored = True
            for key in self._env_set:
                os.environ.pop(key, None)
            self._env_set = []

    def check_config(self) -> None:  # noqa: B027 - optional hook
        """Raise ConfigError for arg values the backend can tell are wrong without connecting."""

    @abstractmethod
    def start(self, run: RunInfo) -> None:
        """Open (or find again) the logger run of ``run.run_id`` (a live backend: or adopt ``run.live_id``'s)."""

    def log_params(self, params: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:  # noqa: B027
        pass

    def log_scalars(self, scalars: list[Scalar]) -> None:  # noqa: B027
        pass

    def log_image(self, image: Media) -> None:  # noqa: B027
        pass

    def log_text(self, text: Media) -> None:  # noqa: B027
        pass

    def log_artifact(self, name: str, path: Path) -> None:  # noqa: B027
        pass

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Flush and close; return where the run went (JSON-able, no secrets) for the report."""

    @classmethod
    def how_to_open(cls, where: Mapping[str, Any]) -> str | None:
        """How a person looks at the run ``finish`` said went to ``where``, e.g. ``"open it: tensorboard
        --logdir logs/tensorboard"`` (None: nothing to say)."""
        return None

    def abort(self) -> None:  # noqa: B027 - best-effort cleanup after a failure
        pass


class LiveWriter(ABC):
    """Receives a training's values while it trains, into a logger run of the training's id and name
    that the mirror stage adopts and completes later (``reprokit.mirror.live`` drives it from a thread
    of its own). Any error it raises stops the live logging for the rest of the training, never the training."""

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.args = dict(args)

    @abstractmethod
    def start(self, run: RunInfo) -> None:
        """Open (or find again, for a resumed training) the logger run of ``run.run_id``."""

    @abstractmethod
    def write(self, scalars: list[Scalar]) -> None:
        """Send ``scalars``; they have reached the logger when this returns."""

    def close(self, finished: bool) -> None:  # noqa: B027 - optional hook
        """The training ended (``finished``: it completed; else it failed)."""
