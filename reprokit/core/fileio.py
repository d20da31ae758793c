"""Atomic file output: every file reprokit writes appears whole or not at all.

A stage killed mid-write (SIGKILL included) leaves at most a ``.<name>.tmp-*`` file behind,
never a truncated output that a later ``dvc repro`` could mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "write_bytes",
    "write_text",
    "write_json",
    "read_json",
    "replace_dir",
    "remove_outputs",
    "staging_dir_in",
]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(0o666 & ~_current_umask())  # mkstemp makes it owner-only; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    # sort_keys + fixed indent: the same values always give the same bytes (determinism).
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def staging_dir_in(parent: str | Path, prefix: str) -> Path:
    """A new empty folder in ``parent`` to fill and then :func:`replace_dir` into place.

    Made with the permissions of an ordinary folder: mkdtemp's owner-only 0700 would outlive the rename.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(0o777 & ~_current_umask())
    return folder


def replace_dir(src: str | Path, dst: str | Path) -> Path:
    """Put the finished folder ``src`` at ``dst`` (same filesystem), replacing what was there.

    The old folder is first renamed aside, so ``dst`` is at every moment either the old
    complete folder, absent, or the new complete folder.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old)
    return dst


def remove_outputs(*paths: str | Path) -> None:
    """Delete a stage's previous outputs before it starts.

    DVC leaves outputs declared with ``cache: false`` in place while a stage re-runs; removing
    them first means a stage killed half-way never leaves the last run's ``metrics.json``
    beside this run's partial files.
    """
    for path in map(Path, paths):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
