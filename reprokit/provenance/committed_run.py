"""A finished run as a revision recorded it, read from git and DVC without touching the workspace.

``read_committed_run(repo, rev)`` resolves ``rev`` (a commit, branch, tag or DVC experiment name)
to a commit and reads, through DVC's file system at that commit (git for tracked files, the DVC
cache — or the default remote — for DVC outputs): the validation metrics (``metrics.json``; per
category from ``by_category.json`` when the revision has one), the per-query table, the
``params.yaml``, and the validation rows of its dataframe with each image's content hash. Nothing
is checked out and nothing in the workspace is read or written.
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reprokit.core.config import lookup
from reprokit.core.errors import CompareError, ReproduceError
from reprokit.core.layout import PARAMS_FILE, RunsDir
from reprokit.evaluate.per_query import read_per_query
from reprokit.provenance.reproduce import resolve_rev

__all__ = ["CommittedRun", "read_committed_run", "VALIDATION_COLUMNS"]

# What makes two validation splits the same, besides the images themselves.
VALIDATION_COLUMNS = ("label", "is_query", "is_gallery", "category", "sequence")
DEFAULT_DATAFRAME, DEFAULT_ROOT = "data/digits/df.csv", "data/digits"


@dataclass
class CommittedRun:
    rev: str
    commit: str
    params: dict[str, Any]
    overall: dict[str, float]
    by_category: dict[str, dict[str, float]]
    per_query: pd.DataFrame
    validation: pd.DataFrame | None = None  # the dataframe's validation rows, in order; None: not readable
    image_md5: dict[str, str] = field(default_factory=dict)  # dataframe path -> md5 of the image (DVC-tracked)
    data_root: str | None = None  # repo-relative data.root; None when it lies outside the repository
    fs: Any = None  # DVC's file system at ``commit``

    @property
    def label(self) -> str:
        return f"{self.rev} ({self.commit[:12]})"

    def image_bytes(self, path: str) -> bytes | None:
        """The image ``path`` (a dataframe path) as the revision recorded it; None when unavailable."""
        if self.data_root is None:
            return None
        try:
            return self.fs.read_bytes(posixpath.normpath(posixpath.join(self.data_root, path)))
        except Exception:  # not in the cache nor on a remote: the page shows the item without its image
            return None

    def retrieved_paths(self) -> list[list[str]]:
        """Each query's retrieved items as dataframe paths (runs before ``retrieved_paths``: mapped by row)."""
        if "retrieved_paths" in self.per_query.columns:
            return list(self.per_query["retrieved_paths"])
        split = _param(self.params, "validate.split", "validation")
        if split != "validation":  # the tuning split is drawn from the training rows at load time
            raise CompareError(
                f"{self.label}: its per_query.tsv has no retrieved_paths column and it scored the {split!r} split, "
                "whose rows compare cannot rebuild to map the retrieved rows to paths",
                hint="re-run validate at that revision (dvc repro) with this reprokit",
            )
        if self.validation is None:
            raise CompareError(
                f"{self.label}: its per_query.tsv has no retrieved_paths column and its dataframe cannot be read "
                "to map the retrieved rows to paths",
                hint="re-run validate at that revision (dvc repro) with this reprokit",
            )
        paths = self.validation["path"].tolist()
        return [[paths[i] for i in row] for row in self.per_query["retrieved"]]


def _param(params: dict[str, Any], dotted: str, default: Any) -> Any:
    value = lookup(params, dotted)
    return default if value is None else value


def _read_text(fs, path: str, label: str, hint: str | None = None) -> str:
    try:
        return fs.read_text(path)
    except Exception as exc:
        if not _exists(fs, path):
            raise CompareError(f"{label} has no {path}", hint=hint) from None
        # Recorded (dvc.lock names it) but its data is neither in the cache nor on a reachable remote.
        text = " ".join(str(exc).split())[:300]
        raise CompareError(
            f"{label}: {path} is recorded but its data is not in the DVC cache nor on a remote ({text})",
            hint="fetch it: `dvc pull` (or `dvc exp pull REMOTE EXP` for an experiment)",
        ) from None


def _exists(fs, path: str) -> bool:
    try:
        return bool(fs.exists(path))
    except Exception:
        return False


def _inside(repo_path: str) -> str | None:
    """``repo_path`` normalised when it is a path inside the repository, else None."""
    if posixpath.isabs(repo_path):
        return None
    norm = posixpath.normpath(repo_path)
    return None if norm == ".." or norm.startswith("../") else norm


def _validation_rows(fs, dataframe: str) -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(fs.read_text(dataframe)), dtype=str, keep_default_na=False)
    if "split" not in df.columns or "path" not in df.columns:
        raise CompareError(f"{dataframe}: not an OML dataframe (needs columns split and path); got {list(df.columns)}")
    return df[df["split"] == "validation"].reset_index(drop=True)


def _image_hashes(fs, root: str) -> dict[str, str]:
    """md5 of every DVC-tracked file under ``root``, keyed by its path relative to ``root``."""
    try:
        found = fs.find(root, detail=True)
    except Exception:
        return {}
    out = {}
    for name, info in found.items():
        md5 = info.get("md5") or (info.get("dvc_info") or {}).get("md5")
        if md5:
            out[posixpath.relpath(name, root)] = md5
    return out


def read_committed_run(repo: Path, rev: str) -> CommittedRun:
    from dvc.api import DVCFileSystem  # DVC's import costs ~0.5 s: paid only by compare

    try:
        commit = resolve_rev(rev, repo)
    except ReproduceError as exc:
        raise CompareError(str(exc), hint=exc.hint) from None
    fs = DVCFileSystem(str(repo), rev=commit)
    label = f"{rev} ({commit[:12]})"
    validate = RunsDir().validate
    params = yaml.safe_load(_read_text(fs, PARAMS_FILE, label)) or {}
    metrics_path = validate.metrics.as_posix()
    metrics = json.loads(_read_text(fs, metrics_path, label, hint="commit the run's metrics after `dvc repro`"))
    # Per category in a file of its own once validate writes one (else still inside metrics.json).
    by_category_path = validate.by_category.as_posix()
    if _exists(fs, by_category_path):
        by_category = json.loads(_read_text(fs, by_category_path, label)).get("by_category", {})
    else:
        by_category = metrics.get("by_category", {})
    per_query = read_per_query(io.StringIO(_read_text(fs, validate.per_query.as_posix(), label)))
    run = CommittedRun(
        rev=rev,
        commit=commit,
        params=params,
        fs=fs,
        per_query=per_query,
        overall={k: float(v) for k, v in (metrics.get("overall") or {}).items()},
        by_category={str(c): {k: float(v) for k, v in m.items()} for c, m in (by_category or {}).items()},
    )
    dataframe = _inside(str(_param(params, "data.dataframe", DEFAULT_DATAFRAME)))
    run.data_root = _inside(str(_param(params, "data.root", DEFAULT_ROOT)))
    if dataframe is not None and _exists(fs, dataframe):
        run.validation = _validation_rows(fs, dataframe)
    if run.data_root is not None:
        run.image_md5 = _image_hashes(fs, run.data_root)
    return run
