"""Reading a finished run folder (``runs/``) into what a logger receives.

The folder contract (paths relative to ``runs/``) is documented in the README and in
``reprokit.mirror``; this module is the only place that knows it. It reads, never writes, and
never imports a backend: the same :class:`RunData` drives every logger.

Step axis (the same for every backend):

- ``train/<col>``        per-step values from ``train/plots/step.tsv`` at ``step``;
- ``train_epoch/<col>``  per-epoch values from ``train/plots/epoch.tsv`` at the epoch's ``step``
                         column (the global step at which the epoch ended; ``epoch`` if empty);
- ``val/<metric>``       validation while training (``train/plots/validation.tsv``), at the validated
                         epoch's step (a column with a ``/`` keeps its name: ``reprokit.core.scalars``);
- ``validate/<metric>``, ``validate/<category>/<metric>``, ``validate/n_queries*`` and the
  ``visualize/*`` figures at the run's final step (the largest train step; 0 without train).

Train values carry the wall time at which training logged them (``train/wall_times.tsv``), so a
replay shows the real training duration on a logger's time axis. ``RunData.train_run_id`` and
``train_run_name`` name the logger run the train stage logged into live (see ``reprokit.mirror.live``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit.core.errors import MirrorError
from reprokit.core.layout import STAGES, RunsDir, media_name, parse_media_name
from reprokit.core.run_record import (  # core: the report reads them too
    read_json_or_fail,
    read_run_tags,
    read_trained_run,
    run_params,
)
from reprokit.core.scalars import Scalar, WallTimes, epoch_tag, read_wall_times, step_tag

__all__ = ["Scalar", "Media", "Artifact", "RunData", "read_run_folder", "STAGES"]


@dataclass(frozen=True)
class Media:
    """An image (``path`` to a PNG) or a text (``text``) logged under ``tag`` at ``step``."""

    tag: str
    step: int
    path: Path
    text: str | None = None
    occurrence: int = 0  # the n-th further medium under the same tag and step (0: the first)

    def file_name(self, suffix: str) -> str:
        return media_name(self.step, self.occurrence, suffix)


@dataclass(frozen=True)
class Artifact:
    name: str  # stable relative name, e.g. "train/artifacts/config.yaml"
    path: Path


@dataclass
class RunData:
    run_id: str  # the pipeline run's id and name (reprokit.core.run_identity)
    run_name: str
    train_run_id: str = ""  # the training's, under which train logged live: the run the mirror adopts
    train_run_name: str = ""
    scalars: list[Scalar] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    images: list[Media] = field(default_factory=list)
    texts: list[Media] = field(default_factory=list)
    user_tags: list[str] = field(default_factory=list)
    auto_tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # stages / files of the contract not found
    skipped: list[str] = field(default_factory=list)  # files present but not understood

    @property
    def final_step(self) -> int:
        steps = [s.step for s in self.scalars if s.tag.startswith("train/")]
        return max(steps) if steps else 0


def _json(path: Path) -> Any:
    return read_json_or_fail(path, MirrorError)


def _read_tsv(path: Path, table: str, wall: WallTimes) -> list[Scalar]:
    """Every non-empty numeric cell of a TSV curve -> a Scalar at the row's ``step``, stamped with the
    row's wall time when ``wall`` has it. ``table``: ``step`` (rows are steps) or ``epoch`` (rows are
    epochs, at the step where each ended; ``epoch`` if that cell is empty)."""
    out: list[Scalar] = []
    step_col, index_cols = "step", ("step", "epoch")
    name = epoch_tag if table == "epoch" else step_tag
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or step_col not in reader.fieldnames:
            raise MirrorError(f"{path}: header must contain column {step_col!r}; got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            step_cell = row.get(step_col) or (row.get("epoch") if table == "epoch" else "")
            try:
                step = int(float(step_cell or ""))  # None or "": ValueError, reported below
            except (TypeError, ValueError):
                raise MirrorError(f"{path}:{line}: column {step_col!r} must be an integer; got {step_cell!r}") from None
            at = wall.get((table, _int_or(row.get(table), -1)))
            for col, cell in row.items():
                if col in index_cols or col is None or cell in (None, ""):
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    raise MirrorError(f"{path}:{line}: column {col!r} must be a number; got {cell!r}") from None
                out.append(Scalar(name(col), step, value, at))
    return out


def _int_or(cell: str | None, default: int) -> int:
    try:
        return int(float(cell or ""))
    except ValueError:
        return default


def _media(root: Path, suffix: str, skipped: list[str]) -> list[tuple[str, int, int, Path]]:
    """``root/<tag...>/<step>[-<n>]<suffix>`` files, tag may contain '/'; sorted by (step, tag, n)."""
    found: list[tuple[str, int, int, Path]] = []
    if not root.is_dir():
        return found
    for path in root.rglob(f"*{suffix}"):
        tag = path.parent.relative_to(root).as_posix()
        parsed = parse_media_name(path.stem)
        if parsed is None or tag == ".":
            skipped.append(path.as_posix())
            continue
        found.append((tag, *parsed, path))
    return sorted(found, key=lambda t: (t[1], t[0], t[2]))


def _validate_scalars(metrics: dict[str, Any], by_category: dict[str, Any], step: int) -> list[Scalar]:
    """``metrics`` from validate/metrics.json, ``by_category`` from validate/by_category.json
    (runs written before that file existed kept ``by_category`` inside metrics.json)."""
    out = []
    for name, value in sorted((metrics.get("overall") or {}).items()):
        out.append(Scalar(f"validate/{name}", step, float(value)))
    for cat, values in sorted((by_category.get("by_category") or metrics.get("by_category") or {}).items()):
        for name, value in sorted(values.items()):
            out.append(Scalar(f"validate/{cat}/{name}", step, float(value)))
    for key in ("n_queries", "n_queries_without_gt"):
        if isinstance(metrics.get(key), (int, float)):
            out.append(Scalar(f"validate/{key}", step, float(metrics[key])))
    return out


def _read_identity(runs: RunsDir) -> RunData:
    trained = read_trained_run(runs, MirrorError, "nothing to mirror")
    train_id = trained.train_run_id
    if len(train_id) != 32 or any(c not in "0123456789abcdef" for c in train_id):
        raise MirrorError(f"{runs.train.identity}: run_id must be 32 lowercase hex characters; got {train_id!r}")
    data = RunData(
        run_id=trained.run_id,
        run_name=trained.run_name,
        train_run_id=train_id,
        train_run_name=trained.train_run_name or f"run-{train_id[:8]}",
    )
    data.auto_tags["train_run_id"] = train_id
    data.missing = [f"{s}/" for s in STAGES if not (runs.root / s).is_dir()]
    return data


def _read_scalars(runs: RunsDir, data: RunData) -> None:
    train = runs.train
    wall: WallTimes = {}
    if train.wall_times.is_file():
        try:
            wall = read_wall_times(train.wall_times)
        except (OSError, ValueError) as exc:
            data.skipped.append(f"{train.wall_times.relative_to(runs.root).as_posix()} ({' '.join(str(exc).split())})")
    # validation.tsv is optional: a run from before validation while training has none.
    for tsv, table, required in (
        (train.step_table, "step", True),
        (train.epoch_table, "epoch", True),
        (train.validation_table, "epoch", False),
    ):
        if tsv.is_file():
            data.scalars += _read_tsv(tsv, table, wall)
        elif required and train.root.is_dir():
            data.missing.append(tsv.relative_to(runs.root).as_posix())
    if runs.validate.metrics.is_file():
        by_category = _json(runs.validate.by_category) if runs.validate.by_category.is_file() else {}
        data.scalars += _validate_scalars(_json(runs.validate.metrics), by_category, data.final_step)
    elif runs.validate.root.is_dir():
        data.missing.append(runs.validate.metrics.relative_to(runs.root).as_posix())
    data.scalars.sort(key=lambda s: (s.step, s.tag))


def _read_media(runs: RunsDir, data: RunData) -> None:
    final = data.final_step
    for tag, step, n, path in _media(runs.train.images, ".png", data.skipped):
        data.images.append(Media(tag, step, path, occurrence=n))
    if runs.visualize.root.is_dir():
        for path in sorted(runs.visualize.root.glob("*.png")):
            data.images.append(Media(f"visualize/{path.stem}", final, path))
    for tag, step, n, path in _media(runs.train.texts, ".txt", data.skipped):
        data.texts.append(Media(tag, step, path, path.read_text(encoding="utf-8", errors="replace"), occurrence=n))


def _read_params_and_tags(runs: RunsDir, data: RunData, extra_tags: tuple[str, ...] | list[str]) -> None:
    """Params: the config train resolved, with the sections later stages record replacing its own."""
    data.params, found = run_params(runs, MirrorError)
    if not found and runs.train.root.is_dir():
        data.missing.append(runs.train.artifact_files.config.relative_to(runs.root).as_posix())
    tags = read_run_tags(runs, MirrorError)
    user = [str(t) for t in tags.get("tags", [])] + [str(t) for t in extra_tags]
    data.user_tags = list(dict.fromkeys(user))  # order-preserving de-duplication
    data.auto_tags.update({str(k): str(v) for k, v in sorted((tags.get("auto") or {}).items())})


def _read_artifacts(runs: RunsDir, data: RunData) -> None:
    """Reproducibility files, every validate/visualize record and the report (page and its
    assets, as they sit under ``report/``); not the model (size)."""
    art_dir, train, validate, report = runs.train.artifacts, runs.train.root, runs.validate.root, runs.report.root
    files = sorted(p for p in art_dir.rglob("*") if p.is_file()) if art_dir.is_dir() else []
    files += sorted(p for p in train.glob("*.json")) if train.is_dir() else []
    files += sorted(p for p in validate.rglob("*") if p.is_file()) if validate.is_dir() else []
    if runs.visualize.params.is_file():
        files.append(runs.visualize.params)
    files += sorted(p for p in report.rglob("*") if p.is_file()) if report.is_dir() else []
    data.artifacts = [Artifact(p.relative_to(runs.root).as_posix(), p) for p in files if not p.name.startswith(".")]


def read_run_folder(runs_dir: str | Path, extra_tags: tuple[str, ...] | list[str] = ()) -> RunData:
    """Everything a logger receives for the pipeline run in ``runs_dir``."""
    runs = RunsDir(runs_dir)
    data = _read_identity(runs)
    _read_scalars(runs, data)
    _read_media(runs, data)
    _read_params_and_tags(runs, data, extra_tags)
    _read_artifacts(runs, data)
    return data
