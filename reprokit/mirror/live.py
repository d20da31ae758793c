"""Live logging: a training's values reach the configured logger while it trains.

The train stage's run-folder logger (the local truth) hands every value it writes to
:meth:`LiveMirror.send`, which only appends to a buffer: a worker thread opens the training's
logger run and sends the buffer at every epoch end (and every ``FLUSH_S`` seconds in between), so
a slow or dead logger never holds a training step. The first error stops live logging for the rest
of the training with one warning; training goes on, and the mirror stage fills the logger run in
from the local files, without duplicating what did arrive (see ``reprokit.mirror.runfolder``).

Backends without a live writer (CSV, ClearML, W&B) receive the whole run from the mirror stage.
Under ``reprokit reproduce`` nothing is logged live: a reproduction never publishes to a tracker.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from reprokit.core.config import LoggerConfig
from reprokit.core.scalars import Scalar
from reprokit.core.secrets import one_line
from reprokit.core.stage_runner import reproducing
from reprokit.mirror import registry
from reprokit.mirror.base import LiveWriter, RunInfo
from reprokit.mirror.paths import home_dir
from reprokit.mirror.registry import BackendSpec

__all__ = ["LiveMirror", "open_live", "FLUSH_S"]

FLUSH_S = 5.0  # longest wait between two sends within an epoch


class LiveMirror:
    """Feeds one :class:`LiveWriter` from a buffer, in a daemon thread; ``send`` never blocks or raises."""

    def __init__(self, writer: LiveWriter, run: RunInfo, backend: str, prog: str = "train") -> None:
        self.writer, self.run, self.backend, self.prog = writer, run, backend, prog
        self._buffer: list[Scalar] = []
        self._wake = threading.Condition()
        self._urgent = self._closing = False
        self.failed: str | None = None  # the error that stopped live logging
        self.sent = 0
        self._thread = threading.Thread(target=self._work, name=f"reprokit-live-{run.run_id[:8]}", daemon=True)
        self._thread.start()

    def send(self, scalars: list[Scalar], epoch_end: bool = False) -> None:
        if self.failed is not None:
            return
        with self._wake:
            self._buffer.extend(scalars)
            if epoch_end:
                self._urgent = True
                self._wake.notify()

    def close(self, finished: bool, timeout_s: float) -> None:
        """Send what is left and close the logger run, waiting at most ``timeout_s``."""
        with self._wake:
            self._closing, self._finished = True, finished
            self._wake.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._stop(f"no answer within logger.timeout_s={timeout_s:g} s")

    def _take(self) -> tuple[list[Scalar], bool]:
        with self._wake:
            deadline = time.monotonic() + FLUSH_S
            while not (self._urgent or self._closing) and time.monotonic() < deadline:
                self._wake.wait(max(0.0, deadline - time.monotonic()))
            batch, self._buffer, self._urgent = self._buffer, [], False
            return batch, self._closing

    def _work(self) -> None:
        try:
            self.writer.start(self.run)
            while True:
                batch, closing = self._take()
                if batch:
                    self.writer.write(batch)
                    self.sent += len(batch)
                if closing:
                    break
            self.writer.close(self._finished)
        except Exception as exc:  # noqa: BLE001 - any logger failure: warn once, training goes on
            self._stop(f"{type(exc).__name__}: {exc}")
            try:
                self.writer.close(False)
            except Exception:  # noqa: BLE001 - the first error is the one reported
                pass

    def _stop(self, why: str) -> None:
        if self.failed is not None:
            return
        self.failed = one_line(why, limit=300)
        with self._wake:
            self._buffer = []
        print(
            f"{self.prog}: warning: live logging to {self.backend} stopped ({self.failed}); training goes on, "
            "and the mirror stage fills the logger run in from runs/train/",
            file=sys.stderr,
            flush=True,
        )


def open_live(
    logger: LoggerConfig,
    run_id: str,
    run_name: str,
    project_dir: str | Path = ".",
    backends: Mapping[str, BackendSpec] = registry.BACKENDS,
) -> LiveMirror | None:
    """The live mirror of the training ``run_id`` into ``logger``, or None (no live writer, or reproducing).

    A bad ``logger`` section or a missing backend package raises here, before training starts, as
    the mirror stage would at its start.
    """
    if reproducing():
        return None
    logger.check("logger")
    cls = registry.backend_class(logger.name, backends)
    registry.check_args(logger.name, logger.args, cls.allowed_args)
    if cls.live is None:
        return None
    args = {k: v for k, v in logger.args.items() if k not in registry.secret_args(logger.args)}
    cls(args).check_config()
    # A sweep trial's training logs where the mirror stage groups the trial's run (and adopts it from).
    run = RunInfo(run_id, run_name, home_dir(project_dir), logger.timeout_s, sweep=logger.sweep.name)
    return LiveMirror(cls.live(args), run, logger.name)
