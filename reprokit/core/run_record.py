"""What a finished run's stages recorded under ``runs/``: its files, the training's identity, its params.

The mirror (a logger run) and the report (a page) show the same run, under the same name and with
the same params: both read them here. A file that cannot be read is one line in the caller's own
error class (``MirrorError``, ``ReportError``), so each says which of them failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.config import flatten
from reprokit.core.errors import ReprokitError
from reprokit.core.fileio import read_json
from reprokit.core.layout import RunsDir
from reprokit.core.run_identity import pipeline_run_id, pipeline_run_name
from reprokit.core.secrets import redact

__all__ = [
    "TrainedRun",
    "read_json_or_fail",
    "read_yaml_mapping",
    "deep_update",
    "read_trained_run",
    "run_params",
    "read_run_tags",
]


def read_json_or_fail(path: Path, error: type[ReprokitError]) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def read_yaml_mapping(path: Path, error: type[ReprokitError]) -> dict[str, Any]:
    """A YAML file's top-level mapping ({} for an empty file or one that holds no mapping)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    return data if isinstance(data, dict) else {}


def deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update``'s values into ``base``, nested mappings merged key by key (in place; returns ``base``)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


@dataclass(frozen=True)
class TrainedRun:
    train_run_id: str  # the training's, from runs/train/run.json
    train_run_name: str
    run_id: str  # the pipeline run's (reprokit.core.run_identity): what the later stages made of it too
    run_name: str


def read_trained_run(runs: RunsDir, error: type[ReprokitError], nothing_to: str) -> TrainedRun:
    """The run's identity; ``nothing_to`` finishes the message when train has not run ("nothing to mirror")."""
    path = runs.train.identity
    if not path.is_file():
        raise error(f"{path} not found: {nothing_to}", hint="run the train stage first (dvc repro)")
    ident = read_json_or_fail(path, error)
    train_id, train_name = str(ident.get("run_id", "")), str(ident.get("run_name", ""))
    run_id = pipeline_run_id(runs, train_id)
    return TrainedRun(train_id, train_name, run_id, pipeline_run_name(train_name, run_id))


def run_params(runs: RunsDir, error: type[ReprokitError]) -> tuple[dict[str, Any], bool]:
    """(the params the run used, flat and redacted; whether train's resolved config was there).

    The config train resolved, with the sections that validate and visualize recorded replacing its
    own: they may have re-run alone with other values. The stages already redact; redacting again
    costs nothing and guards runs from older versions.
    """
    config_yaml = runs.train.artifact_files.config
    found = config_yaml.is_file()
    params = read_yaml_mapping(config_yaml, error) if found else {}
    for record in (runs.validate.params, runs.visualize.params):
        if record.is_file():
            deep_update(params, read_yaml_mapping(record, error))
    return flatten(redact(params)), found


def read_run_tags(runs: RunsDir, error: type[ReprokitError]) -> dict[str, Any]:
    """The tags the training recorded (``{"tags": [...], "auto": {...}}``); {} when it recorded none."""
    path = runs.train.artifact_files.tags
    return read_json_or_fail(path, error) if path.is_file() else {}
