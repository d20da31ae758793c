"""``reprokit sweep FILE``: ask Optuna for parameters, run each trial as a DVC experiment, tell the result.

Up to ``--jobs`` trials run at once, each its own ``dvc exp run --temp`` (see ``trials``). The loop
asks for the next trial whenever a slot is free, until the study holds the requested number of
counted trials (see ``study``), so the same command run again continues where it stopped:

- a trial that fails (a NaN loss, a combination params.yaml's schema rejects, a crash) is told
  FAIL with its one-line reason, and the sweep goes on;
- Ctrl-C (or SIGTERM) stops the running trials, tells them FAIL as interrupted and enqueues their
  params, so the next run asks them again first (the handlers only set a flag the loop polls: ``stop``);
- after a SIGKILL of the controller, the next run finds this clone's trials still RUNNING with
  no live controller: a trial whose experiment was saved is adopted (told COMPLETE, never run
  twice); any other is stopped if still alive, told FAIL as interrupted and its params enqueued.

Several workers (clones, machines) share one study through ``--storage postgresql://...``; each
recovers only its own trials (host + clone path), and a trial asked beyond the number by two
workers at once is discarded before it runs. What a trial proposes depends on the study, not on
the worker that asks (``proposals``): trial *i* of a seeded sweep proposes the same params
anywhere. A TPE trial past its start-up waits, asked but not started, until the earlier trials it
learns from have finished (in any worker); meanwhile this controller keeps recording its own.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from reprokit.core.config import config_from_dict, read_yaml
from reprokit.core.errors import ConfigError, SweepError
from reprokit.core.git import git_toplevel, run_git
from reprokit.core.layout import PARAMS_FILE
from reprokit.core.study_storage import (
    STORAGE_ENV,
    STUDY_ENV,
    TRIAL_ENV,
    default_journal,
    is_database_url,
    open_storage,
    public_url,
)
from reprokit.tune.devices import DevicePool, plan_jobs, visible_gpus
from reprokit.tune.proposals import PROPOSAL_ATTR, REASK_ATTR, proposal_index, suggest_params, tpe_waits_for
from reprokit.tune.stop import StopRequest, stop_signals
from reprokit.tune.study import counts, open_study, set_attr, study_trial_id, tally, worker_id
from reprokit.tune.sweep_file import Sweep, candidate_config, load_sweep, trial_overrides
from reprokit.tune.trials import (
    RunningTrial,
    experiment_metrics,
    failure_reason,
    find_experiment,
    git_remote,
    list_experiments,
    process_alive,
    push_experiment,
    start_trial,
    stop_process_group,
    stop_process_groups,
)

__all__ = ["run_sweep", "SweepOptions", "repo_root", "study_location", "PROG"]

PROG = "reprokit sweep"
POLL_S = 0.25
PENDING_POLL_S = 1.0  # how often a waiting TPE trial looks whether the trials it learns from have finished


@dataclass(frozen=True)
class SweepOptions:
    file: Path
    jobs: int = 1
    storage: str | None = None
    trials: int | None = None


def repo_root(start: Path) -> Path:
    top = git_toplevel(start)
    if top is None:
        raise SweepError(
            f"{start} is not inside a git repository: a trial is a DVC experiment, which needs one",
            hint="run `git init` and commit the project first",
        )
    return top


def study_location(repo: Path, name: str, storage: str | None) -> str:
    """``--storage`` as given for a database; a journal file (the default one included) as an absolute
    path, because the trials' stages run in DVC's copies of the repository, elsewhere."""
    if storage and is_database_url(storage):
        return storage
    return str(Path(storage).resolve() if storage else default_journal(repo, name).resolve())


def _head(repo: Path) -> str:
    proc = run_git(["rev-parse", "HEAD"], repo)
    if proc.returncode != 0:
        raise SweepError(f"{repo} has no commit yet: DVC experiments are based on one", hint="commit the project first")
    return proc.stdout.strip()


def _say(sweep: Sweep, message: str) -> None:
    print(f"{PROG} {sweep.name}: {message}", file=sys.stderr, flush=True)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


class Controller:
    def __init__(
        self,
        repo: Path,
        sweep: Sweep,
        storage_text: str,
        target: int,
        jobs: int,
        pool: DevicePool,
        stop: StopRequest | None = None,
    ) -> None:
        from optuna.trial import TrialState

        self.stop = stop or StopRequest()  # set by the SIGINT/SIGTERM handlers; the loops below poll it
        self.states = TrialState
        self.repo = repo
        self.sweep = sweep
        self.storage_text = storage_text
        self.storage = open_storage(storage_text)
        self.study = open_study(sweep, self.storage)
        self.target = target
        self.jobs = jobs
        self.pool = pool
        self.base = read_yaml(repo / PARAMS_FILE) or {}
        self.worker = worker_id(repo)
        self.baseline = _head(repo)
        self.me = psutil.Process(os.getpid())
        self.running: dict[int, RunningTrial] = {}
        self.pending: Any = None  # a TPE trial asked, waiting for the trials it learns from (no params yet)
        self.pending_said: list[int] | None = None
        self.logs = repo / ".reprokit" / "sweeps" / sweep.name / "logs"
        # Workers sharing a database study share their experiments too: each pushes its own to origin.
        self.push = is_database_url(storage_text) and git_remote(repo) is not None

    # ------------------------------------------------------------------ recording outcomes

    def _attr(self, number: int, key: str, value: Any) -> None:
        set_attr(self.storage, self.sweep.name, number, key, value)

    def _complete(self, number: int, metrics: dict[str, float], rev: str, elapsed: float | None) -> None:
        self._attr(number, "metrics", metrics)
        self._attr(number, "exp_rev", rev)
        if elapsed is not None:
            self._attr(number, "elapsed_s", round(elapsed, 1))
        self.study.tell(number, metrics[self.sweep.metric])

    def _fail(self, number: int, reason: str, elapsed: float | None = None) -> None:
        self._attr(number, "reason", reason)
        if elapsed is not None:
            self._attr(number, "elapsed_s", round(elapsed, 1))
        self.study.tell(number, state=self.states.FAIL)
        _say(self.sweep, f"trial {number} failed: {reason}")

    def _interrupt(self, number: int, params: dict[str, Any], reason: str, proposal: int | None) -> None:
        """Told FAIL as interrupted (not counted), its params enqueued: the next ask runs them again.
        The re-ask keeps the proposal index (a trial interrupted before it had params proposes it then)."""
        self._attr(number, "interrupted", True)
        self._attr(number, "reason", reason)
        self.study.tell(number, state=self.states.FAIL)
        attrs = {REASK_ATTR: number, "params_fixed": bool(params)}
        if proposal is not None:
            attrs[PROPOSAL_ATTR] = proposal
        self.study.enqueue_trial(params, user_attrs=attrs)

    def _outcome(self, number: int, exp_name: str, elapsed: float | None) -> str | None:
        """Tell COMPLETE from the saved experiment; or the reason it cannot be (None: told)."""
        exp = find_experiment(self.repo, exp_name, self.baseline)
        metrics = experiment_metrics(self.repo, exp.rev) if exp else None
        if exp is None or metrics is None:
            return f"no experiment {exp_name!r} with runs/validate/metrics.json was saved"
        value = metrics.get(self.sweep.metric)
        if value is None or not math.isfinite(value):
            return f"the objective {self.sweep.metric} is {value} in {exp_name}"
        if self.push:  # before telling: a finished trial's attributes cannot change
            failed = push_experiment(self.repo, exp_name)
            self._attr(number, "pushed", failed is None)
            if failed:
                _say(self.sweep, f"warning: `dvc exp push origin {exp_name}` failed: {failed}")
        self._complete(number, metrics, exp.rev, elapsed)
        return None

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """This clone's trials left RUNNING by a controller that is gone: adopt, or interrupt and re-ask."""
        for t in self.study.get_trials(deepcopy=False, states=(self.states.RUNNING,)):
            a = t.user_attrs
            if a.get("worker") != self.worker or not counts(t):
                continue
            pid = a.get("controller_pid")
            if pid != self.me.pid and process_alive(pid, a.get("controller_started")):
                continue  # another controller of this clone is running it
            if process_alive(a.get("trial_pid"), a.get("trial_started")):
                stop_process_group(a["trial_pid"])
            name = a.get("exp_name", f"{self.sweep.name}-{t.number}")
            if self._outcome(t.number, name, None) is None:
                _say(
                    self.sweep,
                    f"trial {t.number} ({name}) had finished before its controller stopped: recorded, not run again",
                )
                continue
            self._interrupt(
                t.number,
                t.params,
                f"interrupted: its controller (pid {pid}) stopped while it ran",
                a.get(PROPOSAL_ATTR),
            )
            _say(
                self.sweep,
                f"trial {t.number} was left running by a stopped controller: marked failed, its params asked again",
            )

    # ------------------------------------------------------------------ asking and running

    def _ask_one(self) -> bool:
        """Start one more trial if the study needs one; False when no more are to be asked."""
        t = tally(self.study.get_trials(deepcopy=False))
        if len(t.counted) >= self.target and t.waiting == 0:
            return False
        trial = self.study.ask()  # no params yet: they are suggested once the trial's proposal can be made
        trials = self.study.get_trials(deepcopy=False)
        rank = tally(trials).rank(trial.number)
        if rank is None or rank >= self.target:  # another worker asked at the same time: one too many
            trial.set_user_attr("discarded", True)
            self.study.tell(trial, state=self.states.FAIL)
            return False
        if PROPOSAL_ATTR not in trial.user_attrs:  # a re-ask keeps its original's
            trial.set_user_attr(PROPOSAL_ATTR, proposal_index(trials, trial.number))
        # Whose it is, from the start: a controller killed while this trial waits leaves it to recover().
        for key, value in {
            "worker": self.worker,
            "controller_pid": self.me.pid,
            "controller_started": self.me.create_time(),
        }.items():
            trial.set_user_attr(key, value)
        self.pending = trial
        self._start_pending()
        return True

    def _waits_for(self, trial: Any) -> list[int] | None:
        """None when the trial's proposal can be made now; else the trials it waits for (TPE only)."""
        sampler, attrs = self.sweep.sampler, trial.user_attrs
        if sampler.name != "tpe" or attrs.get("params_fixed"):
            return None
        proposer = self.study.sampler.proposer
        return tpe_waits_for(
            self.study.get_trials(deepcopy=False), attrs[PROPOSAL_ATTR], proposer.startup, proposer.parallel
        )

    def _start_pending(self) -> None:
        waits = self._waits_for(self.pending)
        if waits is None:
            trial, self.pending, self.pending_said = self.pending, None, None
            self._start(trial)
        elif waits != self.pending_said:
            self.pending_said = waits
            what = f"trial(s) {', '.join(map(str, waits))}" if waits else "an earlier trial to be asked again"
            _say(
                self.sweep,
                f"trial {self.pending.number} waits for {what} to finish: TPE's proposal "
                f"{self.pending.user_attrs[PROPOSAL_ATTR]} learns from them (sampler.args.parallel = "
                f"{self.study.sampler.proposer.parallel})",
            )

    def _start(self, trial: Any) -> None:
        suggest_params(trial, self.sweep.space)
        number, sweep = trial.number, self.sweep
        exp_name = f"{sweep.name}-{number}"
        overrides = trial_overrides(sweep, trial.params, number)
        log = self.logs / f"{exp_name}.log"
        for key, value in {
            "exp_name": exp_name,
            "overrides": overrides,
            "baseline": self.baseline,
            "worker": self.worker,
            "controller_pid": self.me.pid,
            "controller_started": self.me.create_time(),
            "log": str(log),
        }.items():
            trial.set_user_attr(key, value)
        shown = _params_text(trial.params)
        try:
            candidate_config(self.base, overrides)
        except ConfigError as exc:
            self._fail(number, f"params rejected by params.yaml's schema ({shown}): {exc.one_line()}")
            return
        devices = self.pool.take()
        env = dict(os.environ)
        env.pop("DVC_EXP_NAME", None)
        env.update({STORAGE_ENV: self.storage_text, STUDY_ENV: sweep.name, TRIAL_ENV: str(number)})
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
            trial.set_user_attr("devices", devices)
        proc = start_trial(self.repo, exp_name, overrides, log, env)
        trial.set_user_attr("trial_pid", proc.pid)
        try:
            trial.set_user_attr("trial_started", psutil.Process(proc.pid).create_time())
        except psutil.Error:
            pass
        self.running[number] = RunningTrial(number, exp_name, proc, log, time.monotonic(), devices, trial)
        gpu = f" on GPU {','.join(devices)}" if devices else ""
        _say(sweep, f"trial {number} ({exp_name}) started{gpu}: {shown}")

    def _attrs(self, number: int) -> dict[str, Any]:
        return self.storage.get_trial(study_trial_id(self.storage, self.sweep.name, number)).user_attrs

    def _finish(self, rt: RunningTrial) -> None:
        self.pool.give_back(rt.devices)
        elapsed = time.monotonic() - rt.started
        code = rt.proc.returncode
        if code == 0:
            reason = self._outcome(rt.number, rt.exp_name, elapsed)
            if reason is None:
                got = self._attrs(rt.number)["metrics"][self.sweep.metric]
                _say(
                    self.sweep,
                    f"trial {rt.number} ({rt.exp_name}) finished in {elapsed:.0f} s: {self.sweep.metric}={got:.4f}",
                )
                return
        else:
            attrs = self._attrs(rt.number)
            if "pruned_at_step" in attrs:  # the train stage's pruning callback stopped it
                self._attr(rt.number, "elapsed_s", round(elapsed, 1))
                self.study.tell(rt.number, state=self.states.PRUNED)
                _say(self.sweep, f"trial {rt.number} ({rt.exp_name}) pruned at step {attrs['pruned_at_step']}")
                return
            reason = failure_reason(rt.log_path, code)
        self._fail(rt.number, reason, elapsed)

    def _wait(self) -> None:
        """Until one of this controller's trials ends, or (a trial pending) a moment to look at the study again."""
        deadline = time.monotonic() + PENDING_POLL_S
        while not self.stop.requested:
            done = [rt for rt in self.running.values() if rt.proc.poll() is not None]
            if done:
                for rt in done:
                    del self.running[rt.number]
                    self._finish(rt)
                return
            if self.pending is not None and time.monotonic() > deadline:
                return
            time.sleep(POLL_S)

    def _stop_running(self) -> None:
        stop_process_groups([rt.pid for rt in self.running.values()])
        for rt in list(self.running.values()):
            self.pool.give_back(rt.devices)
            self._interrupt(
                rt.number,
                rt.trial.params,
                f"interrupted: the sweep was stopped ({self.stop.what}) while it ran",
                rt.trial.user_attrs.get(PROPOSAL_ATTR),
            )
        n = len(self.running)
        self.running.clear()
        if self.pending is not None:
            trial, self.pending = self.pending, None
            self._interrupt(
                trial.number,
                {},
                f"interrupted: the sweep was stopped ({self.stop.what}) while it waited to start",
                trial.user_attrs.get(PROPOSAL_ATTR),
            )
            n += 1
        _say(
            self.sweep,
            f"interrupted: {n} running trial(s) marked failed, their params asked again when "
            "the same command runs again",
        )

    def check_names_free(self) -> None:
        """A new study's trial names must not meet an earlier study's experiments on this commit
        (`dvc exp run -n` refuses a name taken): say so once, before any trial."""
        if self.study.get_trials(deepcopy=False):
            return
        pattern = re.compile(rf"{re.escape(self.sweep.name)}-\d+")
        taken = sorted(
            e.name for e in list_experiments(self.repo) if e.baseline == self.baseline and pattern.fullmatch(e.name)
        )
        if taken:
            raise SweepError(
                f"experiments {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''} already exist on this commit "
                f"from an earlier study {self.sweep.name!r} (its journal is gone), and a trial would take their names",
                hint=f"remove them (`dvc exp remove {' '.join(taken[:3])}`), or rename the sweep file",
            )

    def run(self) -> int:
        self.recover()
        asking = True
        while not self.stop.requested:
            if self.pending is not None:
                self._start_pending()
            while asking and not self.stop.requested and self.pending is None and len(self.running) < self.jobs:
                asking = self._ask_one()
            if not self.running and self.pending is None:
                break
            self._wait()
        if self.stop.requested:
            self._stop_running()
            return 130
        return self._summary()

    def _summary(self) -> int:
        trials = [t for t in self.study.get_trials(deepcopy=False) if counts(t)]
        by_state = {s: sum(t.state == s for t in trials) for s in self.states}
        S = self.states
        elsewhere = by_state[S.RUNNING] + by_state[S.WAITING]
        _say(
            self.sweep,
            f"{by_state[S.COMPLETE]} complete, {by_state[S.PRUNED]} pruned, {by_state[S.FAIL]} failed"
            + (f", {elsewhere} running in other workers" if elsewhere else "")
            + f" (of {self.target}); `reprokit sweep {self.sweep.path} --show` ranks them",
        )
        return 0 if by_state[S.COMPLETE] else 1


def run_sweep(opts: SweepOptions) -> int:
    # From the start: a Ctrl-C while the study opens is a stop like any other.
    with stop_signals() as stop:
        return _run_sweep(opts, stop)


def _run_sweep(opts: SweepOptions, stop: StopRequest) -> int:
    repo = repo_root(Path.cwd())
    sweep = load_sweep(opts.file, repo / PARAMS_FILE)
    if opts.jobs < 1:
        raise SweepError(f"--jobs must be an integer ≥ 1; got {opts.jobs}")
    target = opts.trials if opts.trials is not None else sweep.trials
    if target < 1 or (sweep.sampler.name == "grid" and target > math.prod(len(p.choice) for p in sweep.space)):
        raise SweepError(
            f"--trials must be in [1, {sweep.trials}] for this grid; got {target}"
            if sweep.sampler.name == "grid"
            else f"--trials must be an integer ≥ 1; got {target}"
        )
    storage_text = study_location(repo, sweep.name, opts.storage)
    cfg = config_from_dict(read_yaml(repo / PARAMS_FILE) or {})
    accel = cfg.trainer.accelerator
    gpus = visible_gpus() if accel != "cpu" else []
    jobs, note = plan_jobs(opts.jobs, accel, cfg.trainer.devices, gpus)
    controller = Controller(repo, sweep, storage_text, target, jobs, DevicePool(gpus, cfg.trainer.devices), stop)
    controller.check_names_free()
    if note:
        _say(sweep, note)
    parallel = controller.study.sampler.proposer.parallel
    if sweep.sampler.name == "tpe" and jobs > parallel:
        _say(
            sweep,
            f"note: after its start-up, TPE runs at most {parallel} trial(s) at once across all workers "
            f"(sampler.args.parallel = {parallel}: each learns from the trials that many places before it, "
            "so the sweep proposes the same params with any --jobs); raise it to run more at once",
        )
    _say(sweep, f"study {sweep.name!r} in {public_url(storage_text)}: {target} trial(s), {jobs} at a time")
    return controller.run()
