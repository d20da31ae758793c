"""``reprokit sweep FILE --promote``: the best trial's params as a normal experiment, branched.

The best params (plus the sweep's fixed ``params``) are run again with ``data.tune_fraction: 0``
and ``validate.split: validation``: trained on the full training split, scored on the validation
split the sampler never saw. The experiment is ``<sweep>-best-<trial>`` (``dvc exp run --temp``:
the workspace is untouched), then ``dvc exp branch``-ed to a git branch of the same name; its
validation metrics are recorded in the study, so ``--show`` prints them beside the tuning objective.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from reprokit.core.errors import SweepError
from reprokit.core.git import run_git
from reprokit.tune.sweep_file import Sweep, trial_overrides
from reprokit.tune.trials import exp_command, experiment_metrics, find_experiment

__all__ = ["promote"]


def promote(repo: Path, sweep: Sweep, study: Any) -> dict[str, Any]:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        raise SweepError(
            f"sweep {sweep.name}: no trial has completed yet: nothing to promote",
            hint=f"run `reprokit sweep {sweep.path}` first",
        )
    best = study.best_trial
    name = f"{sweep.name}-best-{best.number}"
    overrides = trial_overrides(sweep, best.params, trial=None, promote=True)
    baseline = run_git(["rev-parse", "HEAD"], repo).stdout.strip()
    exp = find_experiment(repo, name, baseline)
    if exp is None:
        print(
            f"reprokit sweep {sweep.name}: promoting trial {best.number} as {name} (full training split, "
            "validation split scored)",
            file=sys.stderr,
            flush=True,
        )
        env = {k: v for k, v in os.environ.items() if k != "DVC_EXP_NAME"}
        proc = subprocess.run(exp_command(name, overrides), cwd=repo, env=env, stdout=sys.stderr, stderr=sys.stderr)
        if proc.returncode != 0:
            raise SweepError(f"promoting trial {best.number}: `dvc exp run -n {name}` exited with {proc.returncode}")
        exp = find_experiment(repo, name, baseline)
    if exp is None:
        raise SweepError(f"promoting trial {best.number}: experiment {name!r} not found after it ran")
    branch = run_git(["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], repo)
    if branch.returncode != 0:
        made = subprocess.run(["dvc", "exp", "branch", name, name], cwd=repo, capture_output=True, text=True)
        if made.returncode != 0:
            raise SweepError(f"`dvc exp branch {name} {name}` failed: {' '.join(made.stderr.split())[-300:]}")
    metrics = experiment_metrics(repo, exp.rev)
    record = {"trial": best.number, "exp_name": name, "rev": exp.rev, "branch": name, "metrics": metrics}
    study.set_user_attr("promoted", record)
    return record
