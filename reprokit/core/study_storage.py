"""Where a sweep's Optuna study lives (a journal file by default, or a database) and its pruner.

The sweep controller and a trial's train stage (reporting to the pruner) both open the study, so
both go through :func:`open_storage`; the string travels to the trial in ``REPROKIT_SWEEP_STORAGE``.

- a path (default ``.reprokit/sweeps/<sweep>.journal``): Optuna's ``JournalStorage`` over a file,
  safe for several processes on one host (it locks the file);
- ``postgresql://...`` (psycopg 3: rewritten to ``postgresql+psycopg://``), ``postgresql+psycopg2://``,
  ``mysql...://``: Optuna's ``RDBStorage`` through SQLAlchemy, for workers on several machines;
- ``sqlite:`` is refused: SQLite is not safe for parallel trials (Optuna's own advice).

A study's pruner is not kept in its storage: the controller records it in the study's user
attributes (``pruner``: name and args) and a trial's train stage rebuilds it with :func:`build_pruner`.
Optuna is imported here, inside the functions: only a sweep pays for it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reprokit.core.errors import SweepError
from reprokit.core.secrets import one_line

__all__ = [
    "open_storage",
    "public_url",
    "is_database_url",
    "default_journal",
    "STORAGE_ENV",
    "STUDY_ENV",
    "TRIAL_ENV",
    "CONNECT_TIMEOUT_S",
    "PRUNERS",
    "build_pruner",
]

STORAGE_ENV = "REPROKIT_SWEEP_STORAGE"  # set by the controller for its trials' stages
STUDY_ENV = "REPROKIT_SWEEP_STUDY"  # ... with the study's name
TRIAL_ENV = "REPROKIT_SWEEP_TRIAL"  # ... and the trial's number (the train stage reports to the pruner)
CONNECT_TIMEOUT_S = 10
SCHEMA_RACE_ATTEMPTS = 5
_SCHEMA_RACE = re.compile(r"duplicate key|already exists", re.IGNORECASE)
_DB_SCHEMES = ("postgresql", "postgres", "mysql")


def default_journal(repo: Path, sweep: str) -> Path:
    """The study's journal file inside the repository's untracked state (``.reprokit/`` is git-ignored)."""
    return repo / ".reprokit" / "sweeps" / f"{sweep}.journal"


def is_database_url(storage: str) -> bool:
    return urlsplit(storage).scheme.split("+")[0] in (*_DB_SCHEMES, "sqlite")


def public_url(storage: str) -> str:
    """``storage`` without its password (user and host stay), for every message and record."""
    parts = urlsplit(storage)
    if parts.password is None:
        return storage
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _sqlalchemy_url(storage: str) -> str:
    parts = urlsplit(storage)
    if parts.scheme in ("postgresql", "postgres"):  # SQLAlchemy would take psycopg2; reprokit[sweep] ships psycopg 3
        return urlunsplit(("postgresql+psycopg", *parts[1:]))
    return storage


def open_storage(storage: str) -> Any:
    """An Optuna storage for ``storage`` (a journal file path or a database URL); unreachable = one line."""
    if not is_database_url(storage):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = urlsplit(storage).scheme.split("+")[0]
    if scheme == "sqlite":
        raise SweepError(
            f"--storage {public_url(storage)}: SQLite is not safe for parallel trials (Optuna's own advice)",
            hint="leave --storage out (a journal file in .reprokit/sweeps/) or use postgresql://user@host/db",
        )
    url = _sqlalchemy_url(storage)
    try:
        from optuna.storages import RDBStorage
    except ImportError as exc:  # pragma: no cover - optuna is a core dependency
        raise SweepError(f"optuna is not installed correctly ({exc})", hint='pip install "reprokit[sweep]"') from None
    connect = {"connect_timeout": CONNECT_TIMEOUT_S} if scheme in ("postgresql", "postgres") else {}
    secrets = [p for p in (urlsplit(storage).password,) if p]
    for attempt in range(SCHEMA_RACE_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs={"connect_args": connect, "pool_pre_ping": True})
        except ModuleNotFoundError as exc:
            raise SweepError(
                f"--storage {public_url(storage)} needs the database driver {exc.name!r}, which is not installed",
                hint='pip install "reprokit[sweep]"',
            ) from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's OperationalError & co.: any failure to open it
            reason = one_line(getattr(exc, "orig", None) or exc, secrets, limit=300)
            # Workers started together on a new database all create Optuna's tables: the losers of that
            # race see a duplicate key. The tables are there a moment later; open them again.
            if _SCHEMA_RACE.search(reason) and attempt + 1 < SCHEMA_RACE_ATTEMPTS:
                time.sleep(1.0 + attempt)
                continue
            raise SweepError(
                f"cannot reach the study storage {public_url(storage)}: {reason}",
                hint="check that the database server runs and accepts this user",
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "hyperband": "HyperbandPruner"}


def build_pruner(name: str, args: dict[str, Any] | None = None) -> Any:
    from optuna import pruners

    return getattr(pruners, PRUNERS[name])(**(args or {}))
