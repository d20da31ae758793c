"""Samplers and pruners by name: ``sampler: tpe`` or ``sampler: {name: tpe, args: {n_startup_trials: 5}}``.

Each name maps to an Optuna class; ``args`` are its keyword arguments, checked against its
signature before any trial (unknown ones are one line listing the allowed), plus reprokit's own
(``parallel`` for tpe). The study's sampler is a ``proposals.ProposalSampler``: trial *i* proposes
what the named sampler, seeded from the sweep's ``seed`` and *i*, gives, so every worker asking
for trial *i* gets the same parameters (see ``proposals``).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit.core.errors import ConfigError
from reprokit.core.study_storage import PRUNERS as STUDY_PRUNERS
from reprokit.tune.proposals import OWN_SAMPLER_ARGS, ProposalSampler

__all__ = ["Component", "SAMPLERS", "PRUNERS", "check_component", "build_sampler", "build_pruner"]

SAMPLERS = {
    "grid": "optuna.samplers:GridSampler",
    "random": "optuna.samplers:RandomSampler",
    "tpe": "optuna.samplers:TPESampler",
}
PRUNERS = {name: f"optuna.pruners:{cls}" for name, cls in STUDY_PRUNERS.items()}
# Set by the sweep itself, never in args.
_OWN_ARGS = {"seed", "search_space"}


@dataclass(frozen=True)
class Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


def _class(target: str) -> type[Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _allowed_args(cls: type[Any]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.name != "self" and p.kind in named]


def check_component(path: Path, what: str, raw: str | dict[str, Any], registry: dict[str, str]) -> Component:
    name: Any  # a value of the sweep file: checked against the registry below
    args: dict[str, Any]
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
    own = OWN_SAMPLER_ARGS.get(name, {}) if registry is SAMPLERS else {}
    allowed = [a for a in _allowed_args(_class(registry[name])) if a not in _OWN_ARGS] + list(own)
    bad = sorted(a for a in args if a not in allowed)
    if bad:
        raise ConfigError(
            f"{path}: {what}.args for {name!r} has unknown key {bad[0]!r}; allowed: {', '.join(allowed) or '(none)'}"
        )
    parallel = args.get("parallel", 1)
    if "parallel" in own and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise ConfigError(
            f"{path}: {what}.args.parallel must be an integer ≥ 1 (how many {name} trials may run at "
            f"once across all workers, each learning from the trials that many places before it); "
            f"got {parallel!r}"
        )
    try:
        optuna_args = {k: v for k, v in args.items() if k not in own}
        _class(registry[name])(**_build_args(name, optuna_args, seed=0, grid={"x": [0]}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: {what}.args for {name!r} are rejected by Optuna: {' '.join(str(exc).split())}"
        ) from None
    return Component(name, dict(args))


def _build_args(name: str, args: dict[str, Any], seed: int, grid: dict[str, list[Any]]) -> dict[str, Any]:
    out = dict(args)
    if name in ("grid", "random", "tpe"):
        out["seed"] = seed
    if name == "grid":
        out["search_space"] = grid
    return out


def build_sampler(
    component: Component,
    seed: int,
    distributions: dict[str, Any],
    grid: dict[str, list[Any]],
    direction: str = "maximize",
) -> Any:
    """The study's sampler: proposals that depend on (seed, trial index), never on the worker."""
    return ProposalSampler(component.name, component.args, seed, distributions, grid, direction)


def build_pruner(component: Component) -> Any:
    return _class(PRUNERS[component.name])(**component.args)
