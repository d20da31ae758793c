"""The sweep file: ``sweeps/<name>.yaml``, read strictly and checked against params.yaml before any trial.

```yaml
objective: {metric: map@r, direction: maximize}   # any metric validate computes
sampler: tpe                                       # grid | random | tpe, or {name: tpe, args: {parallel: 2, ...}}
trials: 20                                         # a grid may leave it out: every combination
seed: 0                                            # the sampler's seed, and which labels tune
space:                                             # dotted params.yaml keys
  train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
  train.loss.args.margin: {low: 0.1, high: 0.6}
  train.loss.args.miner: {choice: [all, hard]}
pruner: median                                     # none | median | hyperband, or {name, args}
tune_fraction: 0.2                                 # 0: the objective is the validation split's (optimistic)
params: {train.epochs: 4}                          # fixed for every trial (optional)
```

Everything a trial will set is checked here, up front, each failure one line naming the key: an
unknown key, a parameter params.yaml does not have (written or commented out: any key of its schema), a value params.yaml's schema rejects (each
choice and each end of a range is put into a copy of the config and built), an invalid range.
A *combination* the schema rejects is found per trial: that trial is recorded failed.
The type of a range follows params.yaml: an integer key is sampled as integers.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reprokit.core.config import config_from_dict, flatten, read_yaml, set_dotted
from reprokit.core.config_sections import GROUP_NAME_RULE, is_group_name
from reprokit.core.errors import ConfigError
from reprokit.core.layout import PARAMS_FILE
from reprokit.core.schema import load_dataclass
from reprokit.tune.components import PRUNERS, SAMPLERS, Component, check_component

__all__ = ["Sweep", "Param", "load_sweep", "trial_overrides", "SWEEP_KEYS", "candidate_config"]

# The keys a sweep sets itself in every trial: never part of its space or params.
SWEEP_KEYS = ("data.tune_fraction", "data.tune_seed", "validate.split", "logger.sweep.name", "logger.sweep.trial")
_RANGE_KEYS = ("low", "high", "log", "step")
MAX_GRID = 10_000
DEFAULT_TUNE_FRACTION = 0.2


@dataclass(frozen=True)
class _ObjectiveFile:
    metric: str = "map@r"
    direction: Literal["maximize", "minimize"] = "maximize"


@dataclass(frozen=True)
class _SweepFile:
    """The file's top level, loaded by the params.yaml loader (unknown keys and wrong types: one line)."""

    objective: _ObjectiveFile = field(default_factory=_ObjectiveFile)
    sampler: str | dict[str, Any] = "tpe"
    trials: int | None = None
    seed: int = 0
    space: dict[str, Any] = field(default_factory=dict)
    pruner: str | dict[str, Any] = "none"
    tune_fraction: float = DEFAULT_TUNE_FRACTION
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """One dimension: a choice list, or a range of integers or floats."""

    key: str
    kind: Literal["choice", "int", "float"]
    choice: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None

    def distribution(self) -> Any:
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(list(self.choice))
        assert self.low is not None and self.high is not None  # a range: the sweep file's reader required both
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def edge_values(self) -> list[Any]:
        return list(self.choice) if self.kind == "choice" else [self.low, self.high]


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    metric: str
    direction: Literal["maximize", "minimize"]
    sampler: Component
    pruner: Component
    trials: int
    seed: int
    space: tuple[Param, ...]
    tune_fraction: float
    params: dict[str, Any]

    @property
    def optimistic(self) -> bool:
        """The objective is measured on the validation split the final numbers come from."""
        return self.tune_fraction == 0

    def distributions(self) -> dict[str, Any]:
        return {p.key: p.distribution() for p in self.space}

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: list(p.choice) for p in self.space}


def trial_overrides(sweep: Sweep, sampled: dict[str, Any], trial: int | None, promote: bool = False) -> dict[str, Any]:
    """Every params.yaml value a trial sets (dotted key -> value), in a stable order.

    A trial trains without the tuning labels and scores them (``tune_fraction`` > 0); the promoted
    run trains on the full training split and scores the validation split.
    """
    out = dict(sweep.params)
    out.update({p.key: sampled[p.key] for p in sweep.space if p.key in sampled})
    tune = sweep.tune_fraction if not promote else 0.0
    out["data.tune_fraction"] = tune
    out["data.tune_seed"] = sweep.seed
    out["validate.split"] = "tune" if tune > 0 else "validation"
    out["logger.sweep.name"] = sweep.name
    out["logger.sweep.trial"] = trial
    return out


def candidate_config(base: dict[str, Any], overrides: dict[str, Any]):
    """The Config a trial would run with: ``base`` (params.yaml) with ``overrides`` set; ConfigError if rejected."""
    data = copy.deepcopy(base)
    for key, value in overrides.items():
        set_dotted(data, key, value)
    return config_from_dict(data)


def _fail(path: Path, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{path}: {message}", hint=hint)


def _suggest_key(key: str, leaves: list[str]) -> str | None:
    last = key.rsplit(".", 1)[-1]
    same_end = [k for k in leaves if k.rsplit(".", 1)[-1] == last]
    close = same_end or difflib.get_close_matches(key, leaves, n=1)
    return f"did you mean {close[0]}?" if close else None


def _parse_param(path: Path, key: str, spec: Any, current: Any) -> Param:
    where = f"space.{key}"
    if not isinstance(spec, dict):
        raise _fail(path, f"{where} must be {{choice: [...]}} or {{low: .., high: ..}}; got {spec!r}")
    unknown = sorted(set(spec) - {"choice", *_RANGE_KEYS}, key=str)
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r} in {where}; valid keys: choice, {', '.join(_RANGE_KEYS)}")
    if "choice" in spec:
        if set(spec) != {"choice"}:
            raise _fail(
                path, f"{where} has both choice and a range ({', '.join(sorted(set(spec) - {'choice'}))}); give one"
            )
        values = spec["choice"]
        if not isinstance(values, list) or not values:
            raise _fail(path, f"{where}.choice must be a non-empty list; got {values!r}")
        bad = [v for v in values if not (v is None or isinstance(v, (bool, int, float, str)))]
        if bad:
            raise _fail(path, f"{where}.choice values must be numbers, strings, true/false or null; got {bad[0]!r}")
        if len({repr(v) for v in values}) != len(values):
            raise _fail(path, f"{where}.choice lists a value twice: {values!r}")
        return Param(key, "choice", choice=tuple(values))
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise _fail(path, f"{where} needs {' and '.join(missing)} (or a choice list)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise _fail(path, f"{where}: low, high and step must be numbers; got low={low!r}, high={high!r}, step={step!r}")
    if not isinstance(log, bool):
        raise _fail(path, f"{where}.log must be true or false; got {log!r}")
    if isinstance(current, bool) or isinstance(current, str):
        raise _fail(
            path, f"{where}: params.yaml has {current!r} there, not a number: a range needs a number", hint="use choice"
        )
    is_int = isinstance(current, int) or (current is None and all(isinstance(v, int) for v in numbers))
    if is_int and not all(isinstance(v, int) for v in numbers):
        raise _fail(
            path,
            f"{where}: {key} is an integer in params.yaml, so low, high and step must be integers; "
            f"got low={low!r}, high={high!r}, step={step!r}",
        )
    if not low < high:
        raise _fail(path, f"{where}: low must be below high; got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise _fail(path, f"{where}: a log range needs low > 0; got low={low!r}")
    if step is not None and (step <= 0 or log):
        raise _fail(
            path, f"{where}.step must be a number > 0 and not used with log: true; got step={step!r}, log={log}"
        )
    return Param(key, "int" if is_int else "float", low=low, high=high, log=log, step=step)


def _check_keys(path: Path, where: str, keys: list[str], leaves: list[str]) -> None:
    for key in keys:
        if key in SWEEP_KEYS:
            raise _fail(
                path, f"{where}.{key} is set by the sweep itself for every trial", hint="use tune_fraction and seed"
            )
        if key not in leaves:
            raise _fail(path, f"{where}.{key}: params.yaml has no such key", hint=_suggest_key(key, leaves))


def _check_values(path: Path, sweep: Sweep, base: dict[str, Any]) -> None:
    """Each fixed value, each choice and each end of each range must pass params.yaml's schema on its own."""
    fixed = trial_overrides(sweep, {}, trial=0)
    try:
        cfg = candidate_config(base, fixed)
    except ConfigError as exc:
        what = "params" if sweep.params else "tune_fraction"
        raise _fail(path, f"{what}: params.yaml's schema rejects the sweep's fixed values: {exc.one_line()}") from None
    for p in sweep.space:
        for value in p.edge_values():
            try:
                candidate_config(base, {**fixed, p.key: value})
            except ConfigError as exc:
                raise _fail(
                    path, f"space.{p.key}: {value!r} is rejected by params.yaml's schema: {exc.one_line()}"
                ) from None
    computed = cfg.validate.metric_names()
    if sweep.metric not in computed:
        raise _fail(
            path,
            f"objective.metric must be one of the metrics validate computes ({', '.join(computed)}); "
            f"got {sweep.metric!r}",
        )
    if sweep.pruner.name != "none":
        every = flatten(cfg.to_dict()).get("train.validate_every_n_epochs")
        if not every:
            got = "not in this params.yaml" if every is None else f"{every}"
            raise _fail(
                path,
                f"pruner {sweep.pruner.name!r} needs validation during training: "
                f"train.validate_every_n_epochs must be ≥ 1; got {got}",
                hint="set it in params.yaml or the sweep's params, or pruner: none",
            )


def _trials(path: Path, raw: _SweepFile, sampler: str, space: tuple[Param, ...]) -> int:
    if sampler == "grid":
        ranges = [p.key for p in space if p.kind != "choice"]
        if ranges:
            raise _fail(
                path,
                f"space.{ranges[0]}: a grid takes choice lists only; got a range",
                hint="use choice, or sampler: tpe",
            )
        size = 1
        for p in space:
            size *= len(p.choice)
        if size > MAX_GRID:
            raise _fail(path, f"space: the grid has {size} combinations; at most {MAX_GRID}")
        if raw.trials is not None and not 1 <= raw.trials <= size:
            raise _fail(path, f"trials must be an integer in [1, {size}] (the grid's combinations); got {raw.trials}")
        return raw.trials or size
    if raw.trials is None:
        raise _fail(path, f"trials is required with sampler {sampler!r} (only a grid has a natural number of trials)")
    if raw.trials < 1:
        raise _fail(path, f"trials must be an integer ≥ 1; got {raw.trials}")
    return raw.trials


def load_sweep(path: str | Path, params_path: str | Path = PARAMS_FILE) -> Sweep:
    """Read and check the sweep file against ``params_path``; ConfigError (one line) on the first problem."""
    path = Path(path)
    name = path.stem
    if not is_group_name(name):  # it becomes logger.sweep.name: the same rule
        raise _fail(path, f"the sweep's name (the file's stem) must be {GROUP_NAME_RULE}; got {name!r}")
    data = read_yaml(path, "sweep file")
    try:
        raw: _SweepFile = load_dataclass(_SweepFile, {} if data is None else data)
    except ConfigError as exc:
        raise _fail(path, exc.one_line().replace(" in the config;", " in the sweep file;")) from None
    base = read_yaml(params_path) or {}
    try:  # every key the schema has, with its value: params.yaml may leave a default commented out
        resolved = flatten(config_from_dict(base).to_dict())
    except ConfigError as exc:
        raise _fail(path, f"{params_path} itself is rejected, so no trial could run: {exc.one_line()}") from None
    leaves = sorted(resolved)
    if not raw.space:
        raise _fail(path, "space must name at least one params.yaml key to vary")
    _check_keys(path, "space", list(raw.space), leaves)
    _check_keys(path, "params", list(raw.params), leaves)
    overlap = sorted(set(raw.space) & set(raw.params))
    if overlap:
        raise _fail(path, f"{overlap[0]} is both in space and in params; give it in one of them")
    space = tuple(_parse_param(path, k, v, resolved.get(k)) for k, v in raw.space.items())
    sampler = check_component(path, "sampler", raw.sampler, SAMPLERS)
    pruner = check_component(path, "pruner", raw.pruner, PRUNERS)
    if not 0 <= raw.tune_fraction < 1:
        raise _fail(
            path,
            f"tune_fraction must be a number in [0, 1) (0: the validation split, optimistic); got {raw.tune_fraction}",
        )
    if not 0 <= raw.seed <= 2**32 - 1:
        raise _fail(path, f"seed must be an integer in [0, {2**32 - 1}]; got {raw.seed}")
    sweep = Sweep(
        name=name,
        path=path,
        metric=raw.objective.metric,
        direction=raw.objective.direction,
        sampler=sampler,
        pruner=pruner,
        trials=_trials(path, raw, sampler.name, space),
        seed=raw.seed,
        space=space,
        tune_fraction=float(raw.tune_fraction),
        params=dict(raw.params),
    )
    _check_values(path, sweep, base)
    return sweep


def grid_points(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of a grid's choice lists (for tests and the report)."""
    keys = [p.key for p in sweep.space]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(p.choice for p in sweep.space))]
