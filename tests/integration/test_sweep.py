"""`reprokit sweep` on the default pipeline with small settings: every trial a real `dvc exp run`.

A project copy (60 source digits, one epoch) runs `dvc repro` once per session and is committed;
each test sweeps a private copy of it. Trials train without the tuning labels and score them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reprokit.core.study_storage import open_storage
from tests.integration import mirror_readers as readers
from tests.integration.test_dvc_scaling import cached_output, experiments
from tests.projects import copy_repo, run, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.long]  # every test sweeps: several real trials each

GRID = """\
objective: {metric: map@r, direction: maximize}
sampler: grid
seed: 0
space:
  train.lr: {choice: [0.001, 0.01]}
  train.loss.args.margin: {choice: [0.2, 0.5]}
tune_fraction: 0.2
"""


def write_sweep(repo: Path, name: str, text: str) -> Path:
    path = repo / "sweeps" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def load_study(repo: Path, name: str):
    import optuna

    return optuna.load_study(
        study_name=name, storage=open_storage(str(repo / ".reprokit" / "sweeps" / f"{name}.journal"))
    )


def sweep(repo: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["reprokit", "sweep", f"sweeps/{name}.yaml", *args], repo, check=check, timeout=1800)


def workspace_state(repo: Path) -> tuple[str, str, str]:
    return (
        run(["git", "status", "--porcelain"], repo).stdout,
        (repo / "params.yaml").read_text(),
        (repo / "dvc.lock").read_text(),
    )


def test_a_2x2_grid_two_at_a_time_gives_4_experiments_and_4_grouped_logger_runs(sweep_copy):
    repo = sweep_copy
    write_sweep(repo, "grid", GRID)
    before = workspace_state(repo)
    sweep(repo, "grid", "--jobs", "2")
    assert workspace_state(repo) == before  # the user's workspace never changes (sweeps/ is new and untracked)

    trials = sorted(load_study(repo, "grid").trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    combos = {(t.params["train.lr"], t.params["train.loss.args.margin"]) for t in trials}
    assert combos == {(0.001, 0.2), (0.001, 0.5), (0.01, 0.2), (0.01, 0.5)}  # every combination once

    exps = experiments(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    intervals = []
    for t in trials:
        name = f"grid-{t.number}"
        rev = exps[name]
        params = rev["data"]["params"]["params.yaml"]["data"]
        assert params["train"]["lr"] == t.params["train.lr"]
        assert params["train"]["loss"]["args"]["margin"] == t.params["train.loss.args.margin"]
        assert (params["data"]["tune_fraction"], params["validate"]["split"]) == (0.2, "tune")
        assert params["logger"]["sweep"] == {"name": "grid", "trial": t.number}
        overall = rev["data"]["metrics"]["runs/validate/metrics.json"]["data"]["overall"]
        assert overall["map@r"] == pytest.approx(t.value, rel=1e-12)  # the objective is the experiment's metric
        identity = json.loads(cached_output(repo, rev["rev"], "train", "runs/train/run.json"))
        intervals.append((identity["started_at"], identity["finished_at"]))
    # --jobs 2 ran two at once: some two trainings overlap in time, by the experiments' own clocks.
    overlaps = [min(a[1], b[1]) - max(a[0], b[0]) for i, a in enumerate(intervals) for b in intervals[i + 1 :]]
    assert max(overlaps) > 0, intervals

    # One TensorBoard run per trial, all under logs/tensorboard/grid/, tagged with sweep, trial and experiment.
    folders = sorted(p for p in (repo / "logs" / "tensorboard" / "grid").iterdir() if not p.name.startswith("."))
    assert len(folders) == 4
    tagged = {}
    for folder in folders:
        tags = readers.read_tensorboard({"log_dir": str(folder)}).key_values
        tagged[tags["sweep_trial"]] = (tags["sweep"], tags["dvc_exp_name"])
    assert tagged == {str(t.number): ("grid", f"grid-{t.number}") for t in trials}
    assert not [p for p in (repo / "logs" / "tensorboard").iterdir() if p.name.startswith("grid-")]

    shown = sweep(repo, "grid", "--show").stdout
    best = max(trials, key=lambda t: t.value)
    assert f"best: trial {best.number} (grid-{best.number}): map@r = {best.value:.4f} on the tuning split" in shown
    ranks = [line.split()[:2] for line in shown.splitlines() if line[:1].isdigit()]
    assert [int(n) for _, n in ranks] == [t.number for t in sorted(trials, key=lambda t: -t.value)]
    # --html: the same ranking as a page (objective by trial and against each parameter, then the table).
    page_out = sweep(repo, "grid", "--show", "--html", str(repo.parent / "grid.html")).stdout
    assert f"page -> {repo.parent / 'grid.html'}" in page_out
    page = (repo.parent / "grid.html").read_text()
    assert page.count('<img class="chart"') == 2
    assert [int(n) for n in re.findall(r"<tr><td>\d+</td><td>(\d+)</td>", page)] == [int(n) for _, n in ranks]

    # The best trial is a DVC experiment like any other: `reprokit reproduce` proves its numbers.
    proved = run(["reprokit", "reproduce", f"grid-{best.number}"], repo, check=False, timeout=1800)
    assert proved.returncode == 0, proved.stdout[-3000:] + proved.stderr[-3000:]
    assert "DIFFERS" not in proved.stdout


TPE = """\
objective: {metric: map@r, direction: maximize}
sampler: {name: tpe, args: {n_startup_trials: 1}}
trials: 2
seed: 7
space:
  train.lr: {low: 1.0e-4, high: 3.0e-2, log: true}
  train.loss.args.margin: {low: 0.1, high: 0.6}
  train.loss.args.miner: {choice: [all, hard]}
tune_fraction: 0.2
"""


def test_a_seeded_tpe_sweep_proposes_the_same_params_in_the_same_order_twice_then_promotes(sweep_base, tmp_path):
    proposed = []
    for i in range(2):
        repo = copy_repo(sweep_base, tmp_path / f"repo{i}")
        write_sweep(repo, "tpe", TPE)
        sweep(repo, "tpe")
        trials = sorted(load_study(repo, "tpe").trials, key=lambda t: t.number)
        assert [t.state.name for t in trials] == ["COMPLETE"] * 2
        proposed.append([t.params for t in trials])
    # Trial 0 is the seeded random start, trial 1 TPE's proposal from trial 0's objective.
    assert proposed[0] == proposed[1]
    assert proposed[0][0] != proposed[0][1]

    # --promote: the best params trained on the full training split, scored on the validation split, branched.
    study = load_study(repo, "tpe")
    best = study.best_trial
    out = sweep(repo, "tpe", "--promote")
    name = f"tpe-best-{best.number}"
    assert run(["git", "rev-parse", "--verify", f"refs/heads/{name}"], repo).returncode == 0
    promoted = yaml.safe_load(run(["git", "show", f"{name}:params.yaml"], repo).stdout)
    assert (promoted["data"]["tune_fraction"], promoted["validate"]["split"]) == (0.0, "validation")
    assert promoted["train"]["lr"] == pytest.approx(best.params["train.lr"], rel=1e-12)
    validation = json.loads(run(["git", "show", f"{name}:runs/validate/metrics.json"], repo).stdout)["overall"]
    assert f"validation ({name})" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("map@r "))
    assert row.split()[1:] == [f"{best.value:.4g}", f"{validation['map@r']:.4g}"]  # tuning beside validation


KILL = """\
objective: {metric: map@r}
sampler: random
trials: 2
seed: 3
space:
  train.lr: {low: 1.0e-3, high: 1.0e-2}
tune_fraction: 0.2
"""


def _pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits, undelivered, for process ``pid`` (a stopped process keeps it pending)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    shared = next(line for line in status.splitlines() if line.startswith("ShdPnd:"))
    return bool(int(shared.split()[1], 16) & (1 << (sig - 1)))


def _trials_now(repo: Path) -> list:
    try:
        return load_study(repo, "kill").trials
    except KeyError:  # the study is not created yet
        return []


def test_killing_the_controller_mid_trial_and_running_it_again_finishes_without_running_anything_twice(sweep_copy):
    repo = sweep_copy
    write_sweep(repo, "kill", KILL)
    log = open(repo.parent / "controller.log", "w")
    controller = subprocess.Popen(
        ["reprokit", "sweep", "sweeps/kill.yaml"], cwd=repo, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 900
    while True:  # trial 0 finished, trial 1 training
        trials = {t.number: t for t in _trials_now(repo)}
        if 0 in trials and trials[0].state.name == "COMPLETE" and 1 in trials and "trial_pid" in trials[1].user_attrs:
            break
        assert controller.poll() is None, (repo.parent / "controller.log").read_text()
        assert time.monotonic() < deadline, "trial 1 never started"
        time.sleep(1)
    time.sleep(8)  # well inside trial 1's dvc exp run
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait()
    first_rev = trials[0].user_attrs["exp_rev"]
    orphan = trials[1].user_attrs["trial_pid"]

    sweep(repo, "kill")
    trials = sorted(load_study(repo, "kill").trials, key=lambda t: t.number)
    states = {t.number: (t.state.name, bool(t.user_attrs.get("interrupted"))) for t in trials}
    assert states[0] == ("COMPLETE", False) and states[1] == ("FAIL", True), states
    counted = [t for t in trials if not t.user_attrs.get("interrupted")]
    assert [t.state.name for t in counted] == ["COMPLETE"] * 2  # the requested number, interrupted not counted
    reasked = [t for t in counted if t.user_attrs.get("reasked_from") == 1]
    assert len(reasked) == 1 and reasked[0].params == trials[1].params  # the interrupted trial's params again
    assert trials[0].user_attrs["exp_rev"] == first_rev  # trial 0 was not run again
    names = [e.split()[-1] for e in run(["dvc", "exp", "ls", "--name-only"], repo).stdout.split()]
    assert sorted(names) == sorted(t.user_attrs["exp_name"] for t in counted)  # one experiment per trial
    with pytest.raises(ProcessLookupError):
        os.killpg(orphan, 0)  # the trial the killed controller left running was stopped


CRASH = """\
objective: {metric: map@r}
sampler: grid
space:
  model.name: {choice: ["models:build", "no_such_module:build"]}
tune_fraction: 0.2
"""


def test_a_crashing_trial_is_recorded_failed_with_its_reason_and_the_sweep_goes_on(sweep_copy):
    repo = sweep_copy
    write_sweep(repo, "crash", CRASH)
    sweep(repo, "crash", "--jobs", "2")
    by_model = {t.params["model.name"]: t for t in load_study(repo, "crash").trials}
    assert by_model["models:build"].state.name == "COMPLETE"
    failed = by_model["no_such_module:build"]
    assert failed.state.name == "FAIL"
    reason = failed.user_attrs["reason"]
    assert reason.startswith("train: ") and "no_such_module" in reason and "\n" not in reason, reason
    assert reason in sweep(repo, "crash", "--show").stdout


def _with_sigint_ignored(cmd: list[str]) -> list[str]:
    """``cmd`` started as a background job of a non-interactive shell starts it (``make test-all > log &``,
    a CI script): with SIGINT ignored, inherited across exec. The full CI suite ran so, and a controller
    that relied on Python's KeyboardInterrupt (installed only when SIGINT is not ignored at start-up)
    ignored the Ctrl-C below and let its trial finish. The pid stays the same: the command is exec'ed."""
    code = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execvp(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", code, *cmd]


def test_ctrl_c_stops_the_running_trial_and_the_same_command_asks_its_params_again(sweep_copy):
    repo = sweep_copy
    write_sweep(repo, "kill", KILL.replace("trials: 2", "trials: 1"))
    controller = subprocess.Popen(
        _with_sigint_ignored(["reprokit", "sweep", "sweeps/kill.yaml"]),
        cwd=repo,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not (started := [t for t in _trials_now(repo) if "trial_pid" in t.user_attrs]):
        assert controller.poll() is None and time.monotonic() < deadline, controller.stdout.read()
        time.sleep(0.2)
    # Frozen (SIGSTOP to its process group), the trial cannot end before the Ctrl-C reaches the
    # controller: a fixed sleep here was a race that a loaded machine lost (the trial finished first).
    trial_group = started[0].user_attrs["trial_pid"]
    os.killpg(trial_group, signal.SIGSTOP)
    try:
        controller.send_signal(signal.SIGINT)  # what Ctrl-C sends
        # The controller stops the trial's group with SIGTERM: wait until it is pending, then let it act.
        stop_by = time.monotonic() + 60
        while not _pending(trial_group, signal.SIGTERM) and controller.poll() is None and time.monotonic() < stop_by:
            time.sleep(0.1)
    finally:
        # A SIGTERM whose default action is to end the process ends it even while stopped: nothing to continue.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(trial_group, signal.SIGCONT)
    out, _ = controller.communicate(timeout=120)
    assert controller.returncode == 130, out
    assert "interrupted: 1 running trial(s) marked failed" in out
    (first,) = [t for t in load_study(repo, "kill").trials if t.state.name == "FAIL"]
    assert first.user_attrs["interrupted"] is True
    with pytest.raises(ProcessLookupError):
        os.killpg(first.user_attrs["trial_pid"], 0)  # its dvc exp run and stages were stopped

    sweep(repo, "kill")
    trials = sorted(load_study(repo, "kill").trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == first.params and trials[1].user_attrs["reasked_from"] == first.number


PRUNE = """\
objective: {metric: map@r}
sampler: grid
seed: SEED
space:
  train.lr: {choice: [0.01, 1.0e-7]}
pruner: {name: median, args: {n_startup_trials: 1, n_warmup_steps: 0}}
tune_fraction: 0.2
params: {train.validate_every_n_epochs: 1, train.epochs: 3}
"""


def _seed_running_first(value: float) -> int:
    """A grid seed whose trial 0 takes ``value`` (Optuna's GridSampler shuffles the grid by its seed)."""
    import optuna

    for seed in range(50):
        study = optuna.create_study(sampler=optuna.samplers.GridSampler({"train.lr": [0.01, 1e-7]}, seed=seed))
        if study.ask().suggest_categorical("train.lr", [0.01, 1e-7]) == value:
            return seed
    raise AssertionError("no seed found")


def test_a_trial_the_pruner_stops_ends_its_training_early_and_runs_no_later_stage(sweep_copy):
    repo = sweep_copy
    write_sweep(repo, "prune", PRUNE.replace("SEED", str(_seed_running_first(0.01))))
    sweep(repo, "prune")
    good, bad = sorted(load_study(repo, "prune").trials, key=lambda t: t.number)
    assert good.params["train.lr"] == 0.01 and good.state.name == "COMPLETE"
    assert sorted(good.intermediate_values) == [0, 1, 2]  # reported after each epoch's validation
    assert bad.state.name == "PRUNED", (bad.state, bad.user_attrs.get("reason"))
    assert bad.intermediate_values and max(bad.intermediate_values) < 2  # stopped before its last epoch
    assert bad.user_attrs["pruned_at_step"] == max(bad.intermediate_values)
    names = run(["dvc", "exp", "ls", "--name-only"], repo).stdout.split()
    assert "prune-0" in names and "prune-1" not in names  # no later stage ran: no experiment saved
    log = Path(bad.user_attrs["log"]).read_text()
    assert "pruned after epoch" in log and "Running stage 'validate'" not in log
