"""Reading a finished run folder (``runs/``) into what a logger receives.

The folder contract (paths relative to ``runs/``) is documented in the README and in
``reprokit.mirror``; this module is the only place that knows it. It reads, never writes, and
never imports a backend: the same :class:`RunData` drives every logger.

Step axis (the same for every backend):

- ``train/<col>``        per-step values from ``train/plots/step.tsv`` at ``step``;
- ``train_epoch/<col>``  per-epoch values from ``train/plots/epoch.tsv`` at the epoch's ``step``
                         column (the global step at which the epoch ended; ``epoch`` if empty);
- ``validate/<metric>``, ``validate/<category>/<metric>``, ``validate/n_queries*`` and the
  ``visualize/*`` figures at the run's final step (the largest train step; 0 without train).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.config import flatten, redact
from reprokit.core.errors import MirrorError
from reprokit.core.fileio import read_json

__all__ = ["Scalar", "Media", "Artifact", "RunData", "read_run_folder", "STAGES"]

STAGES = ("train", "validate", "visualize")


@dataclass(frozen=True)
class Scalar:
    tag: str
    step: int
    value: float


@dataclass(frozen=True)
class Media:
    """An image (``path`` to a PNG) or a text (``text``) logged under ``tag`` at ``step``."""

    tag: str
    step: int
    path: Path
    text: str | None = None


@dataclass(frozen=True)
class Artifact:
    name: str  # stable relative name, e.g. "train/artifacts/config.yaml"
    path: Path


@dataclass
class RunData:
    run_id: str
    run_name: str
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


def _load_json(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise MirrorError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def _read_tsv(path: Path, step_col: str, index_cols: tuple[str, ...], prefix: str) -> list[Scalar]:
    """Every non-empty numeric cell of a TSV curve -> a Scalar at the row's ``step_col``."""
    out: list[Scalar] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or step_col not in reader.fieldnames:
            raise MirrorError(f"{path}: header must contain column {step_col!r}; got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            step_cell = row.get(step_col) or (row.get("epoch") if prefix == "train_epoch" else "")
            try:
                step = int(float(step_cell))
            except (TypeError, ValueError):
                raise MirrorError(f"{path}:{line}: column {step_col!r} must be an integer; got {step_cell!r}") from None
            for col, cell in row.items():
                if col in index_cols or col is None or cell in (None, ""):
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    raise MirrorError(f"{path}:{line}: column {col!r} must be a number; got {cell!r}") from None
                out.append(Scalar(f"{prefix}/{col}", step, value))
    return out


def _media(root: Path, suffix: str, skipped: list[str]) -> list[tuple[str, int, Path]]:
    """``root/<tag...>/<step><suffix>`` files, tag may contain '/'; sorted by (step, tag)."""
    found = []
    if not root.is_dir():
        return found
    for path in root.rglob(f"*{suffix}"):
        tag = path.parent.relative_to(root).as_posix()
        if not path.stem.isdigit() or tag == ".":
            skipped.append(path.as_posix())
            continue
        found.append((tag, int(path.stem), path))
    return sorted(found, key=lambda t: (t[1], t[0]))


def _validate_scalars(metrics: dict[str, Any], step: int) -> list[Scalar]:
    out = []
    for name, value in sorted((metrics.get("overall") or {}).items()):
        out.append(Scalar(f"validate/{name}", step, float(value)))
    for cat, values in sorted((metrics.get("by_category") or {}).items()):
        for name, value in sorted(values.items()):
            out.append(Scalar(f"validate/{cat}/{name}", step, float(value)))
    for key in ("n_queries", "n_queries_without_gt"):
        if isinstance(metrics.get(key), (int, float)):
            out.append(Scalar(f"validate/{key}", step, float(metrics[key])))
    return out


def _params(config_yaml: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(config_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MirrorError(f"cannot read {config_yaml}: {' '.join(str(exc).split())}") from None
    # The train stage already redacts; redacting again costs nothing and guards old runs.
    return flatten(redact(data)) if isinstance(data, dict) else {}


def read_run_folder(runs_dir: str | Path, extra_tags: tuple[str, ...] | list[str] = ()) -> RunData:
    runs = Path(runs_dir)
    identity = runs / "train" / "run.json"
    if not identity.is_file():
        raise MirrorError(f"{identity} not found: nothing to mirror", hint="run the train stage first (dvc repro)")
    ident = _load_json(identity)
    run_id, run_name = str(ident.get("run_id", "")), str(ident.get("run_name", ""))
    if len(run_id) != 32 or any(c not in "0123456789abcdef" for c in run_id):
        raise MirrorError(f"{identity}: run_id must be 32 lowercase hex characters; got {run_id!r}")
    data = RunData(run_id=run_id, run_name=run_name or f"run-{run_id[:8]}")
    data.missing = [f"{s}/" for s in STAGES if not (runs / s).is_dir()]

    train = runs / "train"
    for name, step_col, index, prefix in (
        ("step.tsv", "step", ("step", "epoch"), "train"),
        ("epoch.tsv", "step", ("step", "epoch"), "train_epoch"),
    ):
        tsv = train / "plots" / name
        if tsv.is_file():
            data.scalars += _read_tsv(tsv, step_col, index, prefix)
        elif train.is_dir():
            data.missing.append(f"train/plots/{name}")
    final = data.final_step

    val_metrics = runs / "validate" / "metrics.json"
    if val_metrics.is_file():
        data.scalars += _validate_scalars(_load_json(val_metrics), final)
    elif (runs / "validate").is_dir():
        data.missing.append("validate/metrics.json")
    data.scalars.sort(key=lambda s: (s.step, s.tag))

    for tag, step, path in _media(train / "images", ".png", data.skipped):
        data.images.append(Media(tag, step, path))
    if (runs / "visualize").is_dir():
        for path in sorted((runs / "visualize").glob("*.png")):
            data.images.append(Media(f"visualize/{path.stem}", final, path))
    for tag, step, path in _media(train / "text", ".txt", data.skipped):
        data.texts.append(Media(tag, step, path, path.read_text(encoding="utf-8", errors="replace")))

    art_dir = train / "artifacts"
    if (art_dir / "config.yaml").is_file():
        data.params = _params(art_dir / "config.yaml")
    elif train.is_dir():
        data.missing.append("train/artifacts/config.yaml")
    tags_file = art_dir / "tags.json"
    tags = _load_json(tags_file) if tags_file.is_file() else {}
    user = [str(t) for t in tags.get("tags", [])] + [str(t) for t in extra_tags]
    data.user_tags = list(dict.fromkeys(user))  # order-preserving de-duplication
    data.auto_tags = {str(k): str(v) for k, v in sorted((tags.get("auto") or {}).items())}

    # Artifacts: reproducibility files and every validate output; not the model (size).
    files = sorted(p for p in art_dir.rglob("*") if p.is_file()) if art_dir.is_dir() else []
    files += sorted(p for p in train.glob("*.json")) if train.is_dir() else []
    files += sorted(p for p in (runs / "validate").rglob("*") if p.is_file()) if (runs / "validate").is_dir() else []
    data.artifacts = [Artifact(p.relative_to(runs).as_posix(), p) for p in files if not p.name.startswith(".")]
    return data
