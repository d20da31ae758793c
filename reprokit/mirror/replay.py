"""``mirror_run``: replay a finished run folder into the configured logger, bounded in time.

The replay runs in a worker thread with a deadline (``logger.timeout_s``); the backend's calls
go through a driver that stops at the next call once the deadline has passed, so a late worker
never publishes a run the report calls failed. Failures print one warning line and are
recorded in ``runs/mirror/report.json``; ``logger.strict`` turns them into :class:`MirrorError`.
A missing backend package (:class:`MissingBackendError`) and bad ``logger`` config
(:class:`ConfigError`) always raise, before anything is read.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reprokit.core.config import LoggerConfig, redact
from reprokit.core.console import shown_path, summary
from reprokit.core.errors import MirrorError
from reprokit.core.fileio import write_json
from reprokit.core.layout import RUNS_ROOT, RunsDir
from reprokit.core.secrets import one_line
from reprokit.core.stage_runner import reproducing
from reprokit.mirror import registry
from reprokit.mirror.base import MirrorBackend, RunInfo
from reprokit.mirror.paths import home_dir
from reprokit.mirror.registry import BackendSpec
from reprokit.mirror.runfolder import RunData, read_run_folder
from reprokit.mirror.tags import sweep_tags

__all__ = ["mirror_run", "reproduction_logger"]

PROG = "reprokit mirror"


class _Cancelled(Exception):
    pass


class _Driver:
    """Counts what reached the backend; refuses further calls after the deadline."""

    def __init__(self, backend: MirrorBackend) -> None:
        self.backend = backend
        self.cancel = threading.Event()
        self.counts = {"scalars": 0, "images": 0, "texts": 0, "artifacts": 0, "params": 0, "tags": 0}
        self.phase = "start"  # the backend call in progress: a timeout inside "finish" may have published
        # Checking for the deadline and entering the next call are one step, and so are passing the
        # deadline and reading the phase: a worker can never slip into finish() after the deadline
        # while the report says it timed out before it.
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.cancel.is_set():
                raise _Cancelled("deadline passed")
            self.phase = fn.__name__
        return fn(*args)

    def stop(self) -> None:
        """Refuse every further call: from here on, ``phase`` is the call the backend is stuck in."""
        with self._lock:
            self.cancel.set()

    def replay(self, data: RunData, info: RunInfo) -> dict[str, Any]:
        b = self.backend
        self.call(b.start, info)
        try:
            self.call(b.log_params, data.params)
            self.counts["params"] = len(data.params)
            self.call(b.log_tags, data.user_tags, data.auto_tags)
            self.counts["tags"] = len(data.user_tags) + len(data.auto_tags)
            self.call(b.log_scalars, data.scalars)
            self.counts["scalars"] = len(data.scalars)
            for image in data.images:
                self.call(b.log_image, image)
                self.counts["images"] += 1
            for text in data.texts:
                self.call(b.log_text, text)
                self.counts["texts"] += 1
            for art in data.artifacts:
                self.call(b.log_artifact, art.name, art.path)
                self.counts["artifacts"] += 1
            return self.call(b.finish)
        except BaseException:
            try:
                b.abort()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise


def _run_with_deadline(driver: _Driver, data: RunData, info: RunInfo) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["where"] = driver.replay(data, info)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    # daemon: a backend stuck past the deadline must not keep the process alive at exit.
    thread = threading.Thread(target=work, name=f"reprokit-mirror-{info.run_id[:8]}", daemon=True)
    thread.start()
    thread.join(info.timeout_s)
    if thread.is_alive():
        driver.stop()
        raise TimeoutError(f"no answer within logger.timeout_s={info.timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["where"]


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def reproduction_logger(logger: LoggerConfig) -> LoggerConfig:
    """``logger``, except under ``reprokit reproduce``: then a throwaway CSV logger inside the
    temporary copy, so that a reproduction never publishes a run to the team's tracker and a
    tracker that is down cannot turn a reproduction into a failure."""
    if not reproducing():
        return logger
    print(
        f"mirror: reproducing: mirroring into a throwaway csv logger in this temporary copy, not into {logger.name}",
        file=sys.stderr,
    )
    return LoggerConfig(name="csv", args={}, strict=False, timeout_s=logger.timeout_s)


def _build_backend(logger: LoggerConfig, backends: Mapping[str, BackendSpec]) -> tuple[MirrorBackend, list[str]]:
    """The configured backend (MissingBackendError/ConfigError before anything is read) and the
    literal secret values found in ``logger.args``, which are dropped and scrubbed from the report."""
    logger.check("logger")
    cls = registry.backend_class(logger.name, backends)
    registry.check_args(logger.name, logger.args, cls.allowed_args)
    secret_keys = registry.secret_args(logger.args)
    secrets = [str(logger.args[k]) for k in secret_keys if logger.args[k] not in (None, "")]
    if secret_keys:
        _warn(
            f"logger.args {', '.join(secret_keys)} ignored: API tokens are read from the environment only "
            f"({registry.spec(logger.name, backends).token_env or 'this backend needs none'}), never from params.yaml"
        )
    backend: MirrorBackend = cls({k: v for k, v in logger.args.items() if k not in secret_keys})
    backend.check_config()
    return backend, secrets


def _new_report(logger: LoggerConfig) -> dict[str, Any]:
    return {
        "backend": logger.name,
        "args": _redacted_args(logger.args),
        "run_id": None,
        "run_name": None,
        "where": {},
        "counts": {},
        "missing": [],
        "skipped": [],
        "notes": [],
        "ok": False,
        "published": "no",  # yes | no | unknown (a timeout, or a remote logger's error, while it was finishing)
        "error": None,
    }


def _replay(
    backend: MirrorBackend,
    driver: _Driver,
    runs: Path,
    project: Path,
    logger: LoggerConfig,
    tags: tuple[str, ...] | list[str],
    report: dict[str, Any],
    secrets: list[str],
    local: bool,
) -> None:
    """Read the run folder and drive the backend; fill ``report``. Raises only for a bug in a local backend."""
    try:
        data = read_run_folder(runs, tags)
        report.update(run_id=data.run_id, run_name=data.run_name, missing=data.missing, skipped=data.skipped)
        if type(backend).media_as_files and (data.images or data.texts):
            report["notes"].append(f"{logger.name} cannot hold images or texts: copied as files into the run folder")
        group = logger.sweep
        if group.name is not None:  # group.active
            data.auto_tags.update(sweep_tags(group.name, group.trial, os.environ.get("DVC_EXP_NAME")))
        # live_*: the logger run the train stage filled live, which a live backend adopts (see base.py).
        info = RunInfo(
            data.run_id,
            data.run_name,
            home_dir(project),
            logger.timeout_s,
            sweep=group.name,
            live_id=data.train_run_id or None,
            live_name=data.train_run_name or None,
        )
        report["where"] = _scrub_dict(_run_with_deadline(driver, data, info), secrets)
        report.update(ok=True, published="yes")
    except Exception as exc:  # noqa: BLE001 - any backend failure is reported, not fatal
        what = exc.one_line() if isinstance(exc, MirrorError) else f"{type(exc).__name__}: {exc}"
        # Past the deadline inside finish(), the late worker may still publish; and a remote logger that
        # fails inside finish() (a request that timed out) may have applied it. Local backends publish
        # by one rename at the very end: their own error in finish() means not published.
        if driver.phase == "finish" and (isinstance(exc, TimeoutError) or not local):
            report["published"] = "unknown"
            what += (
                f"; {logger.name} was finishing the run: whether it was published is unknown, "
                "it may be partially published"
            )
        report["error"] = one_line(what, secrets, limit=500)
        if local and not isinstance(exc, (OSError, TimeoutError, MirrorError)):
            # TensorBoard and CSV are reprokit's own code writing local files: an error there is a bug.
            raise MirrorError(f"{logger.name} backend failed: {report['error']}") from exc
    finally:
        backend.restore_env()  # also after a timeout: the worker thread may still be inside the backend


def mirror_run(
    runs_dir: str | Path = RUNS_ROOT,
    logger: LoggerConfig | None = None,
    tags: tuple[str, ...] | list[str] = (),
    project_dir: str | Path = ".",
    backends: Mapping[str, BackendSpec] = registry.BACKENDS,
) -> dict[str, Any]:
    """Replay ``runs_dir`` (relative paths: against ``project_dir``) into ``logger``; return the report.

    The report (also written atomically to ``<runs_dir>/mirror/report.json``) holds ``backend``,
    ``run_id``/``run_name`` (the pipeline run), ``where`` (log dir / tracking URI and MLflow run
    id / offline zip / W&B run dir), ``counts``, ``missing`` and ``skipped`` run-folder parts,
    ``notes``, ``ok``, ``published`` (yes, no or unknown), ``error`` and ``elapsed_s``.

    ``backends`` maps ``logger.name`` to its implementation (default: the registry); tests use it to
    run a real backend subclass of their own (a :class:`BackendSpec` whose module is a dotted path).
    """
    logger = logger if logger is not None else LoggerConfig()
    backend, secrets = _build_backend(logger, backends)
    project = Path(project_dir)
    runs = Path(runs_dir) if Path(runs_dir).is_absolute() else project / runs_dir
    report_path = RunsDir(runs).mirror.report
    started = time.monotonic()
    report = _new_report(logger)
    driver = _Driver(backend)
    try:
        local = registry.spec(logger.name, backends).local
        _replay(backend, driver, runs, project, logger, tags, report, secrets, local)
    finally:
        report["notes"] += [one_line(n, secrets) for n in backend.notes]
        report["counts"] = dict(driver.counts)
        report["elapsed_s"] = round(time.monotonic() - started, 3)
        write_json(report_path, report)
    _tell(report, runs, report_path, logger, type(backend))
    return report


def _tell(
    report: dict[str, Any], runs: Path, report_path: Path, logger: LoggerConfig, backend: type[MirrorBackend]
) -> None:
    if report["missing"]:
        print(f"{PROG}: note: not in the run folder, not mirrored: {', '.join(report['missing'])}", file=sys.stderr)
    if report["ok"]:
        # The stage's one line: which logger run, where, and the command that shows it.
        summary(
            "mirror",
            f"{logger.name} run {report['run_name']}",
            _location(report["where"]),
            backend.how_to_open(report["where"]),
        )
        return
    message = (
        f"mirroring run {report['run_name'] or runs} into {logger.name} failed: {report['error']}; "
        f"every local file is intact, the failure is recorded in {report_path}"
    )
    if logger.strict:
        raise MirrorError(message, hint="fix the logger and replay with `reprokit mirror`")
    _warn(f"{message}; replay later with `reprokit mirror`")


def _location(where: Mapping[str, Any]) -> str | None:
    for key in ("log_dir", "run_dir", "offline_zip"):  # local folders and files: as a person types them
        if where.get(key):
            return shown_path(where[key])
    return where.get("tracking_uri") or None


def _redacted_args(args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (str(v) if not isinstance(v, (bool, int, float, str, type(None))) else v)
        for k, v in redact(dict(args)).items()
    }


def _scrub_dict(where: Mapping[str, Any], secrets: list[str]) -> dict[str, Any]:
    return {k: one_line(v, secrets) if isinstance(v, str) else v for k, v in where.items()}
