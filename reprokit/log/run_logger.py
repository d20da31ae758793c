"""A Lightning logger that writes a run folder: the local files that are the truth of a run.

Layout under ``root`` (see the artifact contract in the README):

- ``plots/step.tsv``  one row per logged step: ``step  epoch  <key>...`` (empty cell: not logged)
- ``plots/epoch.tsv`` one row per epoch: ``epoch  step  <key>...`` (epoch-level values)
- ``plots/validation.tsv`` one row per validated epoch: ``epoch  step  val/<metric>...`` (validation
  while training, :meth:`RunFolderLogger.log_epoch_values`)
- ``images/<key>/<step>.png`` and ``text/<key>/<step>.txt`` for images and texts (``<step>-<n>`` for
  the n-th further one logged under the same key and step)
- ``wall_times.tsv`` when each step and epoch row was logged: ``table  key  wall_time`` (``step``/``epoch``,
  the row's step or epoch, Unix seconds), kept out of the curves so that they stay byte-identical
- ``hparams.json``

Keys ending in ``_step``/``_epoch`` (Lightning's names for ``on_step=True, on_epoch=True``) go to
the step/epoch table without the suffix; other keys go where the module says they were logged
(``epoch_keys``), defaulting to the step table. Tables are rewritten atomically at every epoch
end, so a killed run leaves complete (if shorter) files.

``live`` (optional) receives every value as it is logged, named as the mirror names it when it
replays these files (``reprokit.core.scalars``): the step values of each logged step, and each epoch's
whole row once the epoch ends. It must not block; the train stage hands it to the configured logger
from another thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from reprokit.core.fileio import atomic_path, write_json, write_text
from reprokit.core.layout import TrainDir, media_name
from reprokit.core.scalars import Scalar, epoch_tag, read_wall_times, step_tag, write_wall_times
from reprokit.core.tables import read_table, write_table
from reprokit.log.media import Occurrences, to_pil

__all__ = ["RunFolderLogger", "LiveSink"]

# Called with the scalars just logged and whether they close an epoch (a good moment to flush).
LiveSink = Callable[[list[Scalar], bool], None]
_INDEX = ("step", "epoch")


class RunFolderLogger(Logger):
    def __init__(
        self,
        root: str | Path,
        epoch_keys: set[str] | None = None,
        state_dir: str | Path | None = None,
        live: LiveSink | None = None,
        on_state_saved: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.layout = TrainDir(self.root)
        self._media = Occurrences()
        # With train.resume, the tables are also kept beside the resume checkpoint: DVC deletes
        # the stage's outputs (runs/train/plots) before the re-run that resumes.
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.epoch_keys = epoch_keys if epoch_keys is not None else set()
        self._step_rows: dict[int, dict[str, Any]] = {}
        self._epoch_rows: dict[int, dict[str, Any]] = {}
        self._validation_rows: dict[int, dict[str, Any]] = {}  # validated epoch -> its val/<metric> values
        self._wall: dict[tuple[str, int], float] = {}  # ("step", step) / ("epoch", epoch) -> Unix seconds
        self.live = live
        # Called once the tables are in state_dir: the resume checkpoint that goes with them may be published.
        self.on_state_saved = on_state_saved

    # -- Logger interface ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return "run_folder"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.root)

    @property
    def log_dir(self) -> str:
        return str(self.root)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        params = dict(params) if isinstance(params, Mapping) else vars(params)
        write_json(self.layout.hparams, {k: _jsonable(v) for k, v in params.items()})

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = int(step or 0)
        now = round(time.time(), 3)
        epoch = metrics.get("epoch")
        epoch_level, stepped = False, []
        for key, value in metrics.items():
            if key == "epoch":
                continue
            value = float(value)
            if key.endswith("_epoch"):
                epoch_level = True
                self._epoch_row(epoch, step)[key[: -len("_epoch")]] = value
            elif key.endswith("_step"):
                stepped.append(key[: -len("_step")])
                self._step_row(step, epoch)[stepped[-1]] = value
            elif key in self.epoch_keys:
                epoch_level = True
                self._epoch_row(epoch, step)[key] = value
            else:
                stepped.append(key)
                self._step_row(step, epoch)[key] = value
        live: list[Scalar] = []
        if stepped:
            self._wall[("step", step)] = now
            row = self._step_rows[step]
            live += [Scalar(step_tag(k), step, row[k], now) for k in stepped]
        if epoch_level:
            row = self._epoch_rows[int(epoch) if epoch is not None else max(self._epoch_rows)]
            self._wall[("epoch", row["epoch"])] = now
            live += [Scalar(epoch_tag(k), row["step"], v, now) for k, v in row.items() if k not in _INDEX]
            validated = self._validation_rows.get(row["epoch"])
            if validated is not None:  # sent with the epoch, at its step
                validated["step"] = row["step"]
                live += [Scalar(epoch_tag(k), row["step"], v, now) for k, v in validated.items() if k not in _INDEX]
            self.write_tables()  # an epoch ended: its complete rows reach the disk
        if live and self.live is not None:
            self.live(live, epoch_level)

    @rank_zero_only
    def log_epoch_values(self, epoch: int, values: Mapping[str, float]) -> None:
        """Values of epoch ``epoch`` computed outside Lightning's logging (validation while training),
        kept at full precision: a row of ``plots/validation.tsv``, written and sent with the epoch's own
        values, at the epoch's step (Lightning logs those right after the epoch-end hooks)."""
        row = self._validation_rows.setdefault(int(epoch), {"epoch": int(epoch)})
        row.update({k: float(v) for k, v in values.items()})

    def log_image(self, key: str, image_hwc: np.ndarray, step: int) -> Path:
        path = self.layout.images / key / media_name(step, self._media.next(self, "image", key, step), ".png")
        with atomic_path(path) as tmp:
            to_pil(image_hwc).save(tmp, format="PNG")
        return path

    def log_text(self, key: str, text: str, step: int) -> Path:
        name = media_name(step, self._media.next(self, "text", key, step), ".txt")
        return write_text(self.layout.texts / key / name, text)

    @rank_zero_only
    def save(self) -> None:
        """Lightning's hook, called after every logged step: nothing to write then. The tables are
        written when an epoch ends and when the run ends (:meth:`write_tables`); rewriting them after
        every step made logging cost grow with the square of the run's length (3.5 ms a step at 111
        steps of the default pipeline, more later)."""

    @rank_zero_only
    def write_tables(self) -> None:
        for base in (self.root, self.state_dir):
            if base is None:
                continue
            layout = TrainDir(base)
            if self._step_rows:
                write_table(layout.step_table, ["step", "epoch"], list(self._step_rows.values()))
            if self._epoch_rows:
                write_table(layout.epoch_table, ["epoch", "step"], list(self._epoch_rows.values()))
            if self._validation_rows:
                write_table(layout.validation_table, ["epoch", "step"], list(self._validation_rows.values()))
            if self._wall:
                write_wall_times(layout.wall_times, self._wall)
        if self.state_dir is not None and self.on_state_saved is not None:
            self.on_state_saved()

    def restore(self) -> None:
        """Reload the tables kept in ``state_dir`` (resuming); rows re-logged later overwrite them."""
        if self.state_dir is None:
            return
        state = TrainDir(self.state_dir)
        for path, rows, key in (
            (state.step_table, self._step_rows, "step"),
            (state.epoch_table, self._epoch_rows, "epoch"),
            (state.validation_table, self._validation_rows, "epoch"),
        ):
            if path.exists():
                for row in read_table(path):
                    rows[int(row[key])] = row
        if state.wall_times.exists():
            self._wall.update(read_wall_times(state.wall_times))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write_tables()

    # -- tables -------------------------------------------------------------------------
    def _step_row(self, step: int, epoch: Any) -> dict[str, Any]:
        row = self._step_rows.setdefault(step, {"step": step})
        if epoch is not None:
            row["epoch"] = int(epoch)
        return row

    def _epoch_row(self, epoch: Any, step: int) -> dict[str, Any]:
        epoch = int(epoch) if epoch is not None else len(self._epoch_rows)
        row = self._epoch_rows.setdefault(epoch, {"epoch": epoch})
        row["step"] = step
        return row

    def last_epoch_values(self) -> dict[str, float]:
        if not self._epoch_rows:
            return {}
        row = self._epoch_rows[max(self._epoch_rows)]
        return {k: v for k, v in row.items() if k not in ("epoch", "step")}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
