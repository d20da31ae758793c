"""The train stage's pruning hook for a sweep trial: reports each validation, stops a hopeless trial."""

from __future__ import annotations

import optuna
import pytest

from reprokit.core.study_storage import STORAGE_ENV, STUDY_ENV, TRIAL_ENV, open_storage
from reprokit.train.pruning import TrialPrunedError, sweep_pruning_hook


def test_outside_a_sweep_there_is_no_hook():
    assert sweep_pruning_hook({}) is None


def test_a_trial_below_the_median_is_pruned_and_marked(tmp_path):
    journal = str(tmp_path / "s.journal")
    study = optuna.create_study(
        study_name="s",
        storage=open_storage(journal),
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    study.set_user_attr("objective", {"metric": "map@r", "direction": "maximize", "tune_fraction": 0.2})
    study.set_user_attr("pruner", {"name": "median", "args": {"n_startup_trials": 1, "n_warmup_steps": 0}})
    first = study.ask()
    for epoch, value in enumerate([0.3, 0.4, 0.5]):
        first.report(value, step=epoch)
    study.tell(first, 0.5)
    second, third = study.ask(), study.ask()
    env = {STORAGE_ENV: journal, STUDY_ENV: "s"}

    good = sweep_pruning_hook({**env, TRIAL_ENV: str(second.number)})
    assert good(0, {"map@r": 0.35, "cmc@1": 0.1}) is False  # above the median: goes on
    bad = sweep_pruning_hook({**env, TRIAL_ENV: str(third.number)})
    good.raise_if_pruned()  # not pruned: nothing raised
    assert bad(0, {"map@r": 0.29}) is True  # below the completed trial's 0.3 at epoch 0: stop training
    with pytest.raises(TrialPrunedError, match=r"trial 2 pruned after epoch 0 \(map@r=0.2900"):
        bad.raise_if_pruned()  # the stage fails before writing anything
    reloaded = optuna.load_study(study_name="s", storage=open_storage(journal))
    assert reloaded.trials[second.number].intermediate_values == {0: 0.35}
    assert reloaded.trials[third.number].intermediate_values == {0: 0.29}
    assert reloaded.trials[third.number].user_attrs["pruned_at_step"] == 0  # what the controller reads
