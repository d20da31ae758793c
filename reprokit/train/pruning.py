"""Pruning a sweep trial from inside its train stage: report each validation, stop when told.

`reprokit sweep` starts each trial with ``REPROKIT_SWEEP_STORAGE``, ``REPROKIT_SWEEP_STUDY`` and
``REPROKIT_SWEEP_TRIAL`` in the environment. With ``train.validate_every_n_epochs`` the train
loop calls a hook after each validation with ``(epoch, metrics)``; :func:`sweep_pruning_hook`
returns that hook for a sweep trial (None otherwise). It reports the objective metric (the study
records which) as the trial's intermediate value at that epoch and asks the study's pruner; a
trial to prune is marked ``pruned_at_step``, its training stops, and :class:`TrialPrunedError`
(raised by the stage before it writes anything) fails the stage, so DVC runs no later stage for it
and the controller records the trial as pruned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reprokit.core.errors import ReprokitError
from reprokit.core.study_storage import STORAGE_ENV, STUDY_ENV, TRIAL_ENV, build_pruner, open_storage

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage

__all__ = ["sweep_pruning_hook", "SweepPruning", "TrialPrunedError"]


class TrialPrunedError(ReprokitError):
    """The sweep's pruner stopped this trial: no later stage should run."""


class SweepPruning:
    """The hook: ``(epoch, metrics) -> stop?``. Returning True stops training on every rank (Lightning's
    ``should_stop``, so DDP ranks stop together); the train stage then calls :meth:`raise_if_pruned`
    before it writes any output, so the stage fails and DVC runs no later stage."""

    def __init__(
        self, storage: BaseStorage, study: Study, trial_id: int, name: str, number: int, metric: str | None
    ) -> None:
        import optuna

        self.storage, self.trial_id, self.name, self.number, self.metric = storage, trial_id, name, number, metric
        self.trial = optuna.trial.Trial(study, trial_id)
        self.pruned_at: int | None = None
        self.value: float | None = None

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric) if self.metric is not None else None
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), step=epoch)
        if not self.trial.should_prune():
            return False
        self.storage.set_trial_user_attr(self.trial_id, "pruned_at_step", epoch)  # what the controller reads
        self.pruned_at, self.value = epoch, float(value)
        return True

    def raise_if_pruned(self) -> None:
        if self.pruned_at is not None:
            raise TrialPrunedError(
                f"sweep {self.name}: trial {self.number} pruned after epoch {self.pruned_at} "
                f"({self.metric}={self.value:.4f} on the scored split): its training stopped there, no later stage runs"
            )


def sweep_pruning_hook(env: Mapping[str, str] | None = None) -> SweepPruning | None:
    """The pruning hook of a sweep trial (the controller's environment variables), else None."""
    env = os.environ if env is None else env
    if not all(env.get(k) for k in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV)):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(env[STORAGE_ENV])
    name, number = env[STUDY_ENV], int(env[TRIAL_ENV])
    recorded = optuna.load_study(study_name=name, storage=storage).user_attrs
    pruner = recorded.get("pruner") or {"name": "none"}
    study = optuna.load_study(study_name=name, storage=storage, pruner=build_pruner(pruner["name"], pruner.get("args")))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), number)
    return SweepPruning(storage, study, trial_id, name, number, (recorded.get("objective") or {}).get("metric"))
