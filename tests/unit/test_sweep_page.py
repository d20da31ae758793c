"""`reprokit sweep FILE --show --html PATH`: the sweep's page, from a real Optuna study (in memory).

Trials of every kind a sweep records (complete, pruned with intermediate values, failed with a
reason) go through the same ranking as `--show` into the page; the page's charts are the
matplotlib SVGs, read back here.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import optuna
import pytest

from reprokit.tune.show import page_data
from reprokit.tune.sweep_file import load_sweep
from reprokit.visualize.sweep_page import write_sweep_page

ROOT = Path(__file__).resolve().parents[2]
SWEEP = """\
objective: {metric: map@r, direction: maximize}
sampler: random
trials: 5
space:
  train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
  train.loss.args.miner: {choice: [all, hard]}
"""
# (lr, miner, state, value): ranked best first among the complete ones.
TRIALS = [
    (1e-3, "all", "COMPLETE", 0.41),
    (3e-3, "hard", "COMPLETE", 0.52),
    (2e-4, "all", "PRUNED", 0.05),
    (5e-3, "hard", "FAIL", None),
    (8e-4, "hard", "COMPLETE", 0.47),
]


@pytest.fixture
def study_and_sweep(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "lr.yaml").write_text(SWEEP)
    sweep = load_sweep(tmp_path / "sweeps" / "lr.yaml", ROOT / "params.yaml")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="lr", direction="maximize")
    dists = {
        "train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "train.loss.args.miner": optuna.distributions.CategoricalDistribution(["all", "hard"]),
    }
    for n, (lr, miner, state, value) in enumerate(TRIALS):
        trial = optuna.trial.create_trial(
            params={"train.lr": lr, "train.loss.args.miner": miner},
            distributions=dists,
            state=getattr(optuna.trial.TrialState, state),
            value=value if state == "COMPLETE" else None,
            intermediate_values={0: 0.02, 1: value} if state == "PRUNED" else None,
            user_attrs={
                "exp_name": f"lr-{n}",
                **({"reason": "train: loss is NaN at step 3"} if state == "FAIL" else {}),
            },
        )
        study.add_trial(trial)
    return study, sweep


def test_the_page_ranks_every_trial_and_draws_the_objective_by_trial_and_by_parameter(study_and_sweep, tmp_path):
    study, sweep = study_and_sweep
    data = page_data(sweep, study, "memory")
    page = write_sweep_page(tmp_path / "sweep.html", data).read_text()

    rows = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td><td>(\w+)</td><td>([^<]*)</td>", page)
    assert rows == [
        ("1", "1", "complete", "0.52"),
        ("2", "4", "complete", "0.47"),
        ("3", "0", "complete", "0.41"),
        ("–", "2", "pruned", "0.05"),
        ("–", "3", "fail", "–"),
    ]  # --show's order and ranks
    assert "train: loss is NaN at step 3" in page and "lr-4" in page

    charts = re.findall(r'<img class="chart" alt="([^"]+)" src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert [alt for alt, _ in charts] == ["objective by trial", "objective against each parameter"]
    by_trial, by_param = (base64.b64decode(svg).decode() for _, svg in charts)
    assert "best so far" in by_trial and "pruned (last reported value)" in by_trial
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", by_param)
    assert texts.count("train.lr") == 2 and texts.count("train.loss.args.miner") == 2  # a panel each: title, axis
    assert {"hard", "all"} <= set(texts)  # a choice parameter's categories are its ticks

    # Self-contained like the report: no request can leave the file.
    assert "Content-Security-Policy" in page and "http://" not in page and "https://" not in page


def test_a_sweep_with_no_finished_trial_gets_a_page_saying_so(study_and_sweep, tmp_path):
    _, sweep = study_and_sweep
    empty = optuna.create_study(study_name="empty", direction="maximize")
    page = write_sweep_page(tmp_path / "empty.html", page_data(sweep, empty, "memory")).read_text()
    assert page.count("no finished trial yet") == 2 and "<tbody></tbody>" in page
