"""The sweep file is checked up front, like params.yaml: each problem one line naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reprokit.core.errors import ConfigError
from reprokit.tune.sweep_file import grid_points, load_sweep, trial_overrides
from tests.projects import PROJECT_ROOT

GOOD = """\
objective: {metric: map@r, direction: maximize}
sampler: tpe
trials: 20
seed: 0
space:
  train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
  train.loss.args.margin: {low: 0.1, high: 0.6}
  train.loss.args.miner: {choice: [all, hard]}
  train.epochs: {low: 2, high: 8, step: 2}
pruner: none
tune_fraction: 0.2
"""


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def sweep_file(project: Path, text: str, name: str = "lr_margin") -> Path:
    path = project / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_good_sweep_file_becomes_optuna_distributions_typed_as_params_yaml(project):
    sweep = load_sweep(sweep_file(project, GOOD), project / "params.yaml")
    assert (sweep.name, sweep.metric, sweep.direction, sweep.trials, sweep.sampler.name) == (
        "lr_margin",
        "map@r",
        "maximize",
        20,
        "tpe",
    )
    d = sweep.distributions()
    assert type(d["train.lr"]).__name__ == "FloatDistribution" and d["train.lr"].log
    assert (
        type(d["train.epochs"]).__name__ == "IntDistribution" and d["train.epochs"].step == 2
    )  # an int in params.yaml
    assert d["train.loss.args.miner"].choices == ("all", "hard")
    over = trial_overrides(sweep, {"train.lr": 0.001}, trial=3)
    assert over["train.lr"] == 0.001 and over["validate.split"] == "tune" and over["data.tune_fraction"] == 0.2
    assert (over["logger.sweep.name"], over["logger.sweep.trial"]) == ("lr_margin", 3)
    promoted = trial_overrides(sweep, {"train.lr": 0.001}, trial=None, promote=True)
    assert (promoted["data.tune_fraction"], promoted["validate.split"]) == (0.0, "validation")


def test_a_grid_takes_every_combination_and_needs_no_trials(project):
    text = (
        "sampler: grid\nspace:\n  train.lr: {choice: [0.001, 0.01]}\n  train.loss.args.miner: {choice: [all, hard]}\n"
    )
    sweep = load_sweep(sweep_file(project, text), project / "params.yaml")
    assert sweep.trials == 4
    assert len(grid_points(sweep)) == 4 and sweep.grid() == {
        "train.lr": [0.001, 0.01],
        "train.loss.args.miner": ["all", "hard"],
    }


BAD = [
    ("sampel: tpe", "unknown key 'sampel' in the sweep file; valid keys: objective, sampler, trials"),
    (
        "space: {train.margin: {low: 0.1, high: 0.6}}",
        "space.train.margin: params.yaml has no such key (hint: did you mean train.loss.args.margin?)",
    ),
    ("space: {train.lr: {low: 0.01, high: 0.001}}", "space.train.lr: low must be below high; got low=0.01, high=0.001"),
    ("space: {train.lr: {low: 0, high: 0.01, log: true}}", "space.train.lr: a log range needs low > 0; got low=0"),
    (
        "space: {train.lr: {low: 0.001, hgih: 0.01}}",
        "unknown key 'hgih' in space.train.lr; valid keys: choice, low, high",
    ),
    (
        "space: {train.lr: {choice: [0.01, -1]}}",
        "space.train.lr: -1 is rejected by params.yaml's schema: train.lr must be null or a number > 0; got -1.0",
    ),
    (
        "space: {train.loss.args.miner: {choice: [all, semi]}}",
        "space.train.loss.args.miner: 'semi' is rejected by params.yaml's schema: train.loss.args.miner must be one of",
    ),
    ("space: {train.epochs: {low: 1.5, high: 3}}", "space.train.epochs: train.epochs is an integer in params.yaml"),
    ("space: {train.loss.args.miner: {low: 1, high: 2}}", "space.train.loss.args.miner: params.yaml has 'all' there"),
    ("objective: {metric: map@R}", "objective.metric must be one of the metrics validate computes (cmc@1, cmc@5"),
    (
        "objective: {metric: map@r, direction: up}",
        "objective.direction must be one of 'maximize', 'minimize'; got 'up'",
    ),
    ("sampler: bayes", "sampler must be one of grid, random, tpe; got 'bayes'"),
    ("sampler: {name: tpe, args: {n_startup: 3}}", "sampler.args for 'tpe' has unknown key 'n_startup'; allowed:"),
    # train.validate_every_n_epochs defaults to 1 (issue 15): a pruner fails only where it is turned off.
    (
        "pruner: median\nparams: {train.validate_every_n_epochs: 0}",
        "pruner 'median' needs validation during training: train.validate_every_n_epochs must be ≥ 1; got 0",
    ),
    ("sampler: grid", "space.train.lr: a grid takes choice lists only; got a range"),
    ("space: {data.tune_fraction: {choice: [0.1, 0.2]}}", "space.data.tune_fraction is set by the sweep itself"),
    ("tune_fraction: 1.5", "tune_fraction must be a number in [0, 1)"),
    ("trials: 0", "trials must be an integer ≥ 1; got 0"),
    ("params: {train.epoch: 2}", "params.train.epoch: params.yaml has no such key (hint: did you mean train.epochs?)"),
    ("params: {train.lr: 0.1}", "train.lr is both in space and in params"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[b[0][:40] for b in BAD])
def test_a_bad_sweep_file_is_one_line_naming_the_problem_before_any_trial(project, line, message):
    base = {"trials": "trials: 3", "space": "space: {train.lr: {low: 0.001, high: 0.01}}"}
    key = line.split(":")[0]
    text = "\n".join([line] + [v for k, v in base.items() if k != key]) + "\n"
    with pytest.raises(ConfigError) as info:
        load_sweep(sweep_file(project, text), project / "params.yaml")
    got = info.value.one_line()
    assert got.startswith(f"{project / 'lr_margin.yaml'}: ") and message in got, got
    assert "\n" not in got


def test_a_sweep_needs_trials_unless_it_is_a_grid_and_a_name_that_names_an_experiment(project):
    with pytest.raises(ConfigError, match="trials is required with sampler 'tpe'"):
        load_sweep(sweep_file(project, "space: {train.lr: {low: 0.001, high: 0.01}}\n"), project / "params.yaml")
    with pytest.raises(ConfigError, match="the sweep's name .* got 'lr margin'"):
        load_sweep(sweep_file(project, GOOD, name="lr margin"), project / "params.yaml")


def test_a_grid_larger_than_its_trials_allow_is_rejected(project):
    text = "sampler: grid\ntrials: 5\nspace:\n  train.lr: {choice: [0.001, 0.01]}\n"
    with pytest.raises(ConfigError, match=r"trials must be an integer in \[1, 2\] \(the grid's combinations\); got 5"):
        load_sweep(sweep_file(project, text), project / "params.yaml")
