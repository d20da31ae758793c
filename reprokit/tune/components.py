"""Samplers and pruners by name: ``sampler: tpe`` or ``sampler: {name: tpe, args: {n_startup_trials: 5}}``.

Each name maps to an Optuna class; ``args`` are its keyword arguments, checked against its
signature before any trial (unknown ones are one line listing the allowed). Samplers are seeded
with the sweep's ``seed``: the same sweep file proposes the same parameters in the same order.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit.core.errors import ConfigError
from reprokit.core.study_storage import PRUNERS as STUDY_PRUNERS

__all__ = ["Component", "SAMPLERS", "PRUNERS", "check_component", "build_sampler", "build_pruner"]

SAMPLERS = {"grid": "reprokit.tune.components:AskTellGridSampler", "random": "optuna.samplers:RandomSampler",
            "tpe": "optuna.samplers:TPESampler"}
PRUNERS = {name: f"optuna.pruners:{cls}" for name, cls in STUDY_PRUNERS.items()}
# Set by the sweep itself, never in args.
_OWN_ARGS = {"seed", "search_space"}


def _grid_sampler() -> type:
    from optuna.samplers import GridSampler

    class AskTellGridSampler(GridSampler):
        """Optuna's GridSampler, minus its ``study.stop()`` once the grid is covered: that works only inside
        ``optimize()``, and the controller (ask/tell) counts the trials itself."""

        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001 - Optuna's signature
            return None

    return AskTellGridSampler


def __getattr__(name: str) -> type:  # AskTellGridSampler, built on first use: optuna is imported lazily
    if name == "AskTellGridSampler":
        return _grid_sampler()
    raise AttributeError(name)


@dataclass(frozen=True)
class Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


def _class(target: str) -> type:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _allowed_args(cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.name != "self" and p.kind in named]


def check_component(path: Path, what: str, raw: str | dict[str, Any], registry: dict[str, str]) -> Component:
    if isinstance(raw, str):
        name, args = raw, {}
    else:
        unknown = sorted(set(raw) - {"name", "args"}, key=str)
        if unknown:
            raise ConfigError(f"{path}: unknown key {unknown[0]!r} in {what}; valid keys: name, args")
        name, args = raw.get("name"), raw.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(f"{path}: {what}.args must be a mapping; got {args!r}")
    if name not in registry:
        raise ConfigError(f"{path}: {what} must be one of {', '.join(registry)}; got {name!r}")
    allowed = [a for a in _allowed_args(_class(registry[name])) if a not in _OWN_ARGS]
    bad = sorted(a for a in args if a not in allowed)
    if bad:
        raise ConfigError(
            f"{path}: {what}.args for {name!r} has unknown key {bad[0]!r}; allowed: {', '.join(allowed) or '(none)'}"
        )
    try:
        _class(registry[name])(**_build_args(name, args, seed=0, grid={"x": [0]}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {what}.args for {name!r} are rejected by Optuna: {' '.join(str(exc).split())}") from None
    return Component(name, dict(args))


def _build_args(name: str, args: dict[str, Any], seed: int, grid: dict[str, list[Any]]) -> dict[str, Any]:
    out = dict(args)
    if name in ("grid", "random", "tpe"):
        out["seed"] = seed
    if name == "grid":
        out["search_space"] = grid
    return out


def build_sampler(component: Component, seed: int, grid: dict[str, list[Any]]) -> Any:
    return _class(SAMPLERS[component.name])(**_build_args(component.name, component.args, seed, grid))


def build_pruner(component: Component) -> Any:
    return _class(PRUNERS[component.name])(**component.args)
