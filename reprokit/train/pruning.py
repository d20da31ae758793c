"""Pruning a sweep trial from inside its train stage: report each validation, stop when told.

`reprokit sweep` starts each trial with ``REPROKIT_SWEEP_STORAGE``, ``REPROKIT_SWEEP_STUDY`` and
``REPROKIT_SWEEP_TRIAL`` in the environment. With ``train.validate_every_n_epochs`` the train
loop calls a hook after each validation with ``(epoch, metrics)``; :func:`sweep_pruning_hook`
returns that hook for a sweep trial (None otherwise). It reports the objective metric (the study
records which) as the trial's intermediate value at that epoch and asks the study's pruner; a
trial to prune is marked ``pruned_at_step`` and :class:`TrialPrunedError` ends the stage, so DVC
runs no later stage for it and the controller records the trial as pruned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

from reprokit.core.errors import ReprokitError
from reprokit.core.study_storage import STORAGE_ENV, STUDY_ENV, TRIAL_ENV, build_pruner, open_storage

__all__ = ["sweep_pruning_hook", "TrialPrunedError"]


class TrialPrunedError(ReprokitError):
    """The sweep's pruner stopped this trial: no later stage should run."""


def sweep_pruning_hook(env: Mapping[str, str] | None = None) -> Callable[[int, Mapping[str, float]], bool] | None:
    env = os.environ if env is None else env
    if not all(env.get(k) for k in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV)):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(env[STORAGE_ENV])
    name, number = env[STUDY_ENV], int(env[TRIAL_ENV])
    recorded = optuna.load_study(study_name=name, storage=storage).user_attrs.get("pruner") or {"name": "none"}
    study = optuna.load_study(study_name=name, storage=storage, pruner=build_pruner(recorded["name"], recorded.get("args")))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), number)
    trial = optuna.trial.Trial(study, trial_id)
    metric = (study.user_attrs.get("objective") or {}).get("metric")

    def report(epoch: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):
            return False
        trial.report(float(value), step=epoch)
        if trial.should_prune():
            storage.set_trial_user_attr(trial_id, "pruned_at_step", epoch)
            raise TrialPrunedError(
                f"sweep {name}: trial {number} pruned after epoch {epoch} ({metric}={value:.4f} on the scored split): "
                "its training stops here and no later stage runs"
            )
        return False

    return report
