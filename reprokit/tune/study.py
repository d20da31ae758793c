"""The sweep's Optuna study: opened by name from its storage, and what its trials' records mean.

Each trial carries user attributes: ``exp_name`` (its DVC experiment), ``overrides`` (every
params.yaml value it set), ``baseline`` (the commit it ran on), ``worker`` (host and clone that
runs it), the controller's and the trial's process ids, and at the end ``metrics``/``exp_rev``
or ``reason`` (a failure in one line). A trial is *counted* towards the requested number unless
it was interrupted (its controller stopped: its params are asked again as a new trial) or was
asked beyond the number (several workers asking at once: discarded at once).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprokit.core.errors import SweepError
from reprokit.tune.components import build_pruner, build_sampler
from reprokit.tune.sweep_file import Sweep

__all__ = ["open_study", "worker_id", "Tally", "tally", "set_attr", "study_trial_id"]


def worker_id(repo: Path) -> str:
    return f"{socket.gethostname()}:{repo.resolve()}"


def open_study(sweep: Sweep, storage: Any) -> Any:
    """The study named after the sweep: created, or loaded by every later run and every other worker."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the controller prints its own lines
    sampler = build_sampler(
        sweep.sampler,
        sweep.seed,
        sweep.distributions(),
        sweep.grid() if sweep.sampler.name == "grid" else {},
        sweep.direction,
    )
    study = optuna.create_study(
        study_name=sweep.name,
        storage=storage,
        sampler=sampler,
        pruner=build_pruner(sweep.pruner),
        direction=sweep.direction,
        load_if_exists=True,
    )
    recorded = study.user_attrs.get("objective")
    wanted = {"metric": sweep.metric, "direction": sweep.direction, "tune_fraction": sweep.tune_fraction}
    if recorded is None:
        study.set_user_attr("objective", wanted)
        study.set_user_attr("space", sorted(p.key for p in sweep.space))
    if study.user_attrs.get("pruner") != {"name": sweep.pruner.name, "args": sweep.pruner.args}:
        # A trial's train stage rebuilds the pruner from here (Optuna does not store it).
        study.set_user_attr("pruner", {"name": sweep.pruner.name, "args": sweep.pruner.args})
    elif recorded != wanted:
        raise SweepError(
            f"study {sweep.name!r} in this storage measures {recorded}, but {sweep.path} asks for {wanted}: "
            "its trials would not be comparable",
            hint="rename the sweep file (a new study), or restore its objective",
        )
    return study


@dataclass
class Tally:
    counted: list[Any]  # FrozenTrials that count towards the requested number, by number
    finished: int  # of those: complete, pruned, failed
    waiting: int  # of those: enqueued (an interrupted trial's params), not started yet

    def rank(self, number: int) -> int | None:
        for i, t in enumerate(self.counted):
            if t.number == number:
                return i
        return None


def counts(trial: Any) -> bool:
    attrs = trial.user_attrs
    return not attrs.get("interrupted") and not attrs.get("discarded")


def tally(trials: list[Any]) -> Tally:
    from optuna.trial import TrialState

    counted = sorted((t for t in trials if counts(t)), key=lambda t: t.number)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in counted)
    waiting = sum(t.state == TrialState.WAITING for t in counted)
    return Tally(counted, finished, waiting)


def study_trial_id(storage: Any, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` (Optuna's public storage API)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def set_attr(storage: Any, study_name: str, number: int, key: str, value: Any) -> None:
    storage.set_trial_user_attr(study_trial_id(storage, study_name, number), key, value)
