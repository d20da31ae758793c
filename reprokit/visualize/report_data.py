"""What the report shows, read from a finished run folder (``runs/``); nothing here draws or writes.

Required: ``train/run.json`` (the run's identity), ``validate/metrics.json`` and
``validate/per_query.tsv``. Everything else (baseline, curves, figures, artifacts) is shown
when present and named as missing otherwise, so a partial run still gets a page.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit.core.config import config_from_dict, flatten, redact
from reprokit.core.errors import ReportError
from reprokit.core.layout import RunsDir
from reprokit.core.run_record import read_json_or_fail, read_run_tags, read_trained_run, read_yaml_mapping, run_params

__all__ = ["RunIdentity", "ParamChange", "ReportData", "gather_report", "read_curve"]


@dataclass(frozen=True)
class RunIdentity:
    run_name: str  # the pipeline run's name: the logger run the mirror writes has the same
    run_id: str
    train_run_id: str
    train_run_name: str
    commit: str | None
    branch: str | None
    dirty: bool | None  # None: train recorded no git state
    tags: tuple[str, ...]
    experiment: str | None  # the DVC experiment that trained, when there was one


@dataclass(frozen=True)
class ParamChange:
    key: str
    value: Any
    default: Any


@dataclass
class ReportData:
    identity: RunIdentity
    overall: dict[str, float]
    by_category: dict[str, dict[str, float]]
    baseline: dict[str, float]
    n_queries: int | None
    n_queries_without_gt: int | None
    train_metrics: dict[str, float]
    params_changed: list[ParamChange]
    step_curve: dict[str, list[float]] | None  # column -> values, None when the file is missing
    epoch_curve: dict[str, list[float]] | None
    validation_curve: dict[str, list[float]] | None  # validation while training; None: not validated
    cmc_curve: dict[str, list[float]] | None
    figures: dict[str, Path]  # title -> PNG, in the order the page shows them
    worst_metric: str | None  # visualize.metric: the worst queries (and the table's first sort) use it
    per_query: Path
    missing: list[str] = field(default_factory=list)  # optional inputs not found (relative to runs/)


def _json(path: Path) -> Any:
    return read_json_or_fail(path, ReportError)


def _yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, ReportError)


def read_curve(path: Path) -> dict[str, list[float]]:
    """A TSV curve (``dvc plots`` format) as column -> values; empty cells become NaN."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames or ()}
        for line, row in enumerate(reader, start=2):
            for name in columns:
                cell = row.get(name) or ""
                try:
                    columns[name].append(float(cell) if cell else float("nan"))
                except ValueError:
                    raise ReportError(f"{path}:{line}: column {name!r} must be a number; got {cell!r}") from None
    return columns


def _identity(runs: RunsDir) -> RunIdentity:
    trained = read_trained_run(runs, ReportError, "no run to report")
    git = runs.train.artifact_files.git
    state = _json(git) if git.is_file() else {}
    tags = read_run_tags(runs, ReportError)
    return RunIdentity(
        run_name=trained.run_name,
        run_id=trained.run_id,
        train_run_id=trained.train_run_id,
        train_run_name=trained.train_run_name,
        commit=state.get("commit"),
        branch=state.get("branch"),
        dirty=state.get("dirty") if state.get("is_repo", True) and "dirty" in state else None,
        tags=tuple(str(t) for t in tags.get("tags", [])),
        experiment=(tags.get("auto") or {}).get("dvc_exp_name"),
    )


def _run_params(runs: RunsDir, missing: list[str]) -> dict[str, Any]:
    """The params the run used, as the mirror gives its logger run."""
    params, found = run_params(runs, ReportError)
    if not found:
        missing.append(runs.train.artifact_files.config.relative_to(runs.root).as_posix())
    return params


def params_changed(params: dict[str, Any]) -> list[ParamChange]:
    """The flat params whose value is not the schema's default (keys the schema lacks included)."""
    defaults = flatten(redact(config_from_dict({}).to_dict()))
    out = []
    for key in sorted(params):
        default = defaults.get(key, "(not in the schema)")
        value = params[key]
        # YAML gives lists where the schema has tuples; 3 and 3.0 are the same setting.
        if isinstance(value, list | tuple) and isinstance(default, list | tuple):
            same = list(value) == list(default)
        else:
            same = value == default
        if not same:
            out.append(ParamChange(key, value, default))
    return out


def _by_category(runs: RunsDir, metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-category metrics: their own file once validate writes one, else the metrics.json key."""
    own = runs.validate.by_category
    source = _json(own) if own.is_file() else metrics
    return {str(c): _numbers(values) for c, values in (source.get("by_category") or {}).items()}


def _numbers(data: Any) -> dict[str, float]:
    items = data.items() if isinstance(data, dict) else ()
    return {str(k): float(v) for k, v in items if isinstance(v, int | float) and not isinstance(v, bool)}


def _optional(path: Path, runs: RunsDir, missing: list[str]) -> Path | None:
    if path.is_file():
        return path
    missing.append(path.relative_to(runs.root).as_posix())
    return None


def gather_report(runs: RunsDir) -> ReportData:
    """Everything the report shows for the pipeline run in ``runs``."""
    missing: list[str] = []
    identity = _identity(runs)
    if not runs.validate.metrics.is_file() or not runs.validate.per_query.is_file():
        raise ReportError(
            f"{runs.validate.metrics} or {runs.validate.per_query} not found: the report needs a validated run",
            hint="run the validate stage first (dvc repro)",
        )
    metrics = _json(runs.validate.metrics)
    baseline_file = _optional(runs.validate.baseline, runs, missing)
    train_metrics_file = _optional(runs.train.metrics, runs, missing)
    curves = {}
    for name, path in (("step", runs.train.step_table), ("epoch", runs.train.epoch_table), ("cmc", runs.validate.cmc)):
        found = _optional(path, runs, missing)
        curves[name] = read_curve(found) if found else None
    # Optional: a run validated nothing while training (validate_every_n_epochs: 0), or predates it.
    validation = read_curve(runs.train.validation_table) if runs.train.validation_table.is_file() else None
    figures = {}
    for title, path in (
        ("Worst queries", runs.visualize.worst_queries),
        ("Grad-CAM of the worst queries", runs.visualize.gradcam),
    ):
        found = _optional(path, runs, missing)
        if found:
            figures[title] = found
    visualize_params = _yaml(runs.visualize.params).get("visualize", {}) if runs.visualize.params.is_file() else {}
    n_queries, n_without = metrics.get("n_queries"), metrics.get("n_queries_without_gt")
    return ReportData(
        identity=identity,
        overall=_numbers(metrics.get("overall")),
        by_category=_by_category(runs, metrics),
        baseline=_numbers(_json(baseline_file).get("raw_pixels")) if baseline_file else {},
        n_queries=int(n_queries) if isinstance(n_queries, int | float) else None,
        n_queries_without_gt=int(n_without) if isinstance(n_without, int | float) else None,
        train_metrics=_numbers(_json(train_metrics_file)) if train_metrics_file else {},
        params_changed=params_changed(_run_params(runs, missing)),
        step_curve=curves["step"],
        epoch_curve=curves["epoch"],
        validation_curve=validation if validation and validation.get("step") else None,
        cmc_curve=curves["cmc"],
        figures=figures,
        worst_metric=visualize_params.get("metric"),
        per_query=runs.validate.per_query,
        missing=missing,
    )
