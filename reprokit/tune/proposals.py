"""What each trial proposes: a function of the sweep's seed and the trial's place in the study, never of the worker.

Every worker (a clone, a machine, a ``--jobs`` slot) that asks for the study's *i*-th proposal gets
the same parameters, so N workers share the work of one search instead of repeating it, and the
sweep proposes the same set whether it runs with ``--jobs 1``, ``--jobs 2`` or on two machines:

- ``random`` (and the first ``n_startup_trials`` of ``tpe``): proposal *i* is drawn by a generator
  seeded with ``(seed, i)``;
- ``grid``: proposal *i* is point *i* of the grid shuffled by ``seed``; a point some other trial
  already holds (running, waiting or finished: a race, a re-ask) is skipped for the next free one,
  so no point ever runs twice;
- ``tpe`` after its start-up: TPE seeded with ``(seed, i)`` and fitted on exactly the trials
  ``0 .. i - parallel`` (``sampler.args.parallel``, default 1), taken from the study all workers
  share. Its proposal waits until those have finished: with ``parallel: 1`` TPE learns from every
  earlier trial (one trial at a time after the start-up, as Optuna's own sequential, reproducible
  case); ``parallel: k`` lets k trials run at once across all workers, each learning from every
  trial at least k places before it. The history is the same whoever asks, hence the proposal.

The index *i* of a trial is its number less the trials before it that propose nothing new (the
re-asks of interrupted trials, which repeat their original's params and index, and trials
discarded as asked beyond the requested number): both are marked when created or at once after, so
*i* depends on the study alone. A trial records it as the user attribute ``proposal``.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, cast

import numpy as np

__all__ = [
    "derived_seed",
    "proposal_index",
    "grid_order",
    "ProposalSampler",
    "PROPOSAL_ATTR",
    "tpe_defaults",
    "tpe_waits_for",
    "suggest_params",
]

PROPOSAL_ATTR = "proposal"
REASK_ATTR = "reasked_from"
DISCARD_ATTR = "discarded"
INTERRUPT_ATTR = "interrupted"
# reprokit's own arguments of a sampler (Optuna's class does not take them).
OWN_SAMPLER_ARGS = {"tpe": {"parallel": 1}}


def derived_seed(seed: int, index: int) -> int:
    """A 32-bit seed for proposal ``index``: independent streams for every (seed, index) pair."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def proposal_index(trials: list[Any], number: int) -> int:
    """The proposal index of trial ``number`` given ``trials`` (the study's FrozenTrials; it may not be one yet)."""
    below = [t for t in trials if t.number < number]
    mine = [t for t in trials if t.number == number]
    return _indices(below + mine).get(number, number - sum(_proposes_nothing(t) for t in below))


def grid_order(grid: dict[str, list[Any]], seed: int) -> list[dict[str, Any]]:
    """Every grid point, shuffled by ``seed`` (the same order in every worker)."""
    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    order = np.random.default_rng(np.random.SeedSequence([seed])).permutation(len(points))
    return [points[i] for i in order]


def tpe_defaults() -> dict[str, Any]:
    import inspect

    from optuna.samplers import TPESampler

    return {"n_startup_trials": inspect.signature(TPESampler).parameters["n_startup_trials"].default}


def _counts(t: Any) -> bool:
    return not t.user_attrs.get(INTERRUPT_ATTR) and not t.user_attrs.get(DISCARD_ATTR)


def _indices(trials: list[Any]) -> dict[int, int]:
    """Every trial's proposal index in one pass (a study from before the attribute existed has none recorded)."""
    out, skipped = {}, 0
    for t in sorted(trials, key=lambda t: t.number):
        out[t.number] = int(t.user_attrs[PROPOSAL_ATTR]) if PROPOSAL_ATTR in t.user_attrs else t.number - skipped
        skipped += _proposes_nothing(t)
    return out


def _proposes_nothing(t: Any) -> bool:
    """A re-ask repeats its original's proposal; a discarded trial never ran: neither takes an index."""
    return REASK_ATTR in t.user_attrs or bool(t.user_attrs.get(DISCARD_ATTR))


def _history(trials: list[Any], below: int) -> list[Any]:
    """The counted trials whose proposal index is below ``below``, by index."""
    index = _indices(trials)
    return sorted((t for t in trials if _counts(t) and index[t.number] < below), key=lambda t: index[t.number])


def tpe_waits_for(trials: list[Any], index: int, startup: int, parallel: int) -> list[int] | None:
    """None when TPE's proposal ``index`` can be made now; else the trial numbers it waits for (possibly
    empty: an earlier proposal's trial is not in the study yet, e.g. an interrupted one not re-asked)."""
    if index < startup:
        return None
    below = index - parallel + 1
    history = _history(trials, below)
    running = [t.number for t in history if not t.state.is_finished()]
    if running or len(history) < below:
        return running
    return None


class _Proposer:
    """Proposal ``index`` of one sweep; pure given (seed, index) and, for TPE, the shared history."""

    def __init__(
        self,
        name: str,
        args: dict[str, Any],
        seed: int,
        distributions: dict[str, Any],
        grid: dict[str, list[Any]],
        direction: str,
    ) -> None:
        self.name, self.seed, self.distributions, self.direction = name, seed, distributions, direction
        own = OWN_SAMPLER_ARGS.get(name, {})
        self.parallel = int(args.get("parallel", own.get("parallel", 1)))
        self.tpe_args = {k: v for k, v in args.items() if k not in own}
        self.startup = (
            int(self.tpe_args.get("n_startup_trials", tpe_defaults()["n_startup_trials"])) if name == "tpe" else 0
        )
        self.order = grid_order(grid, seed) if name == "grid" else []

    def random(self, index: int) -> dict[str, Any]:
        import optuna

        scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=derived_seed(self.seed, index)))
        return scratch.ask(self.distributions).params

    def tpe(self, trials: list[Any], index: int) -> dict[str, Any]:
        if index < self.startup:
            return self.random(index)
        import optuna

        args = {**self.tpe_args, "n_startup_trials": 0, "seed": derived_seed(self.seed, index)}
        direction = cast(Literal["minimize", "maximize"], self.direction)  # the sweep file's reader checked it
        scratch = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(**args))
        scratch.add_trials(_history(trials, index - self.parallel + 1))
        return scratch.ask(self.distributions).params

    def grid(self, trials: list[Any], number: int, index: int) -> dict[str, Any]:
        keys = list(self.distributions)
        taken = {
            tuple(repr(t.params.get(k)) for k in keys) for t in trials if t.number != number and _counts(t) and t.params
        }
        n = len(self.order)
        for step in range(n):
            point = self.order[(index + step) % n]
            if tuple(repr(point[k]) for k in keys) not in taken:
                return point
        return self.order[index % n]  # the grid is covered: only a trial beyond the number asks (then discarded)

    def propose(self, trials: list[Any], number: int, index: int) -> dict[str, Any]:
        if self.name == "grid":
            return self.grid(trials, number, index)
        if self.name == "tpe":
            return self.tpe(trials, index)
        return self.random(index)


def suggest_params(trial: Any, space: Any) -> dict[str, Any]:
    """Suggest every param of ``space`` (the sweep's Params) on ``trial``: its proposal, made by the study's
    sampler, or the fixed params of a re-ask."""
    for p in space:
        d = p.distribution()
        if p.kind == "choice":
            trial.suggest_categorical(p.key, list(p.choice))
        elif p.kind == "int":
            trial.suggest_int(p.key, d.low, d.high, step=d.step, log=d.log)
        else:
            trial.suggest_float(p.key, d.low, d.high, step=d.step, log=d.log)
    return trial.params


def _sampler_class() -> type:
    from optuna.samplers import BaseSampler

    class ProposalSampler(BaseSampler):
        """An Optuna sampler whose every value comes from the trial's proposal (see the module's doc).
        Parameters are all sampled independently: the whole proposal is made once per trial and cached."""

        def __init__(self, proposer: _Proposer) -> None:
            self.proposer = proposer
            self._made: dict[int, dict[str, Any]] = {}

        def infer_relative_search_space(self, study, trial):  # noqa: ANN001, ANN201 - Optuna's signature
            return {}

        def sample_relative(self, study, trial, search_space):  # noqa: ANN001, ANN201
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: ANN001, ANN201
            if trial.number not in self._made:
                trials = study.get_trials(deepcopy=False)
                index = proposal_index(trials, trial.number)
                self._made[trial.number] = self.proposer.propose(trials, trial.number, index)
            return self._made[trial.number][param_name]

    return ProposalSampler


def ProposalSampler(
    name: str,
    args: dict[str, Any],
    seed: int,
    distributions: dict[str, Any],  # noqa: N802
    grid: dict[str, list[Any]],
    direction: str = "maximize",
) -> Any:
    """The study's sampler (optuna is imported on first use)."""
    return _sampler_class()(_Proposer(name, args, seed, distributions, grid, direction))
