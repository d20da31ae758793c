"""A trial is one DVC experiment: ``dvc exp run --temp -n <sweep>-<n> -S key=value ...``.

Why ``--temp`` (and not ``--queue`` + ``dvc queue start``): a temp run happens in DVC's own copy of
the repository (``.dvc/tmp/exps/``), so the user's workspace never changes, and in the foreground:
the controller owns the process, so its exit code is the trial's outcome, its output the reason
of a failure, and it can be stopped by its process group. Queue workers are detached and known
only through ``dvc queue status``; an adaptive sampler wants to ask for the next parameters when
a slot frees, not fill a queue up front. Several temp runs at once are safe with DVC's global
``--wait-for-lock``: they meet only in DVC's short repository-lock sections (setting up the copy,
saving the experiment), and without it a run that finds the lock taken fails at once (measured
here: 3 of 18 runs six at a time failed "Unable to acquire lock"; 0 of 18 with it).

Results are read from git, not from ``dvc exp show`` (about a second per call): the experiment's
commit ``refs/exps/<baseline>/<name>`` holds ``runs/validate/metrics.json`` (``cache: false``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from reprokit.core.git import exp_refs, run_git
from reprokit.core.layout import RunsDir

__all__ = [
    "exp_command",
    "format_value",
    "start_trial",
    "RunningTrial",
    "find_experiment",
    "list_experiments",
    "experiment_metrics",
    "failure_reason",
    "stop_process_group",
    "stop_process_groups",
    "process_alive",
    "Experiment",
    "git_remote",
    "push_experiment",
]

METRICS_PATH = RunsDir().validate.metrics.as_posix()
_STAGE_ERROR = re.compile(r"^\s*([\w.-]+): error: (.+)$")
_DVC_ERROR = re.compile(r"^ERROR: (.+)$")


def format_value(value: Any) -> str:
    """A value as ``-S key=<value>`` wants it: YAML that reads back as the same value and type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a quoted YAML string: "hard", "models:build", "1e-3" stay strings


def exp_command(exp_name: str, overrides: dict[str, Any]) -> list[str]:
    """``-S ++key=value``: ``++`` sets the key whether params.yaml writes it or leaves its default commented out."""
    cmd = ["dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", exp_name]
    for key, value in overrides.items():
        cmd += ["-S", f"++{key}={format_value(value)}"]
    return cmd


@dataclass
class RunningTrial:
    number: int
    exp_name: str
    proc: subprocess.Popen
    log_path: Path
    started: float
    devices: list[str] = field(default_factory=list)
    trial: Any = None  # the optuna Trial the controller asked for

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_trial(
    repo: Path, exp_name: str, overrides: dict[str, Any], log_path: Path, env: dict[str, str]
) -> subprocess.Popen:
    """Start the trial's ``dvc exp run`` in its own session (process group): Ctrl-C in the terminal
    reaches the controller only, which then stops each trial's whole group itself."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            exp_command(exp_name, overrides),
            cwd=repo,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (pids are reused)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and (started is None or abs(proc.create_time() - started) < 1.0)
    except psutil.Error:
        return False


def stop_process_group(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the process group ``pid`` leads (a trial: dvc and its stage processes), SIGKILL what is left."""
    stop_process_groups([pid], grace_s)


def stop_process_groups(pids: list[int], grace_s: float = 15.0) -> None:
    """:func:`stop_process_group` for several trials at once: all are signalled before any is waited
    for, so stopping N trials takes one grace period, not N."""
    left = list(pids)
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        left = [pid for pid in left if _signal_group(pid, sig)]
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = [pid for pid in left if _group_alive(pid)]
        if not left:
            return


def _signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when it is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # reap our own child, or it stays a zombie in the group
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


@dataclass(frozen=True)
class Experiment:
    name: str
    rev: str
    baseline: str


def list_experiments(repo: Path) -> list[Experiment]:
    """Every DVC experiment of the repository: ``refs/exps/<2 hex>/<38 hex>/<name>``."""
    found = []
    for ref, rev in exp_refs(repo):
        parts = ref.split("/")
        if len(parts) == 5 and len(parts[2]) == 2:
            found.append(Experiment(parts[4], rev, parts[2] + parts[3]))
    return found


def find_experiment(repo: Path, name: str, baseline: str | None = None) -> Experiment | None:
    matches = [e for e in list_experiments(repo) if e.name == name and (baseline is None or e.baseline == baseline)]
    return matches[0] if len(matches) == 1 else None


def experiment_metrics(repo: Path, rev: str) -> dict[str, float] | None:
    """``overall`` of the experiment's validate metrics, or None when the commit has none."""
    proc = run_git(["show", f"{rev}:{METRICS_PATH}"], repo)
    if proc.returncode != 0:
        return None
    try:
        overall = json.loads(proc.stdout).get("overall") or {}
    except ValueError:
        return None
    return {k: float(v) for k, v in overall.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def failure_reason(log_path: Path, returncode: int | None) -> str:
    """One line: the stage's own error (``train: error: ...``), else DVC's, else the exit code."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    stage = [m for m in (_STAGE_ERROR.match(line) for line in lines) if m]
    if stage:
        return " ".join(f"{stage[-1][1]}: {stage[-1][2]}".split())[:500]
    dvc = [m[1] for m in (_DVC_ERROR.match(line) for line in lines) if m]
    if dvc:
        return " ".join(dvc[0].split())[:500]
    return f"dvc exp run exited with {returncode} (log: {log_path})"


def git_remote(repo: Path, name: str = "origin") -> str | None:
    proc = run_git(["remote", "get-url", name], repo)
    return proc.stdout.strip() if proc.returncode == 0 else None


def push_experiment(repo: Path, exp_name: str, remote: str = "origin") -> str | None:
    """``dvc exp push <remote> <exp>``: the experiment's commit to the git remote, its outputs to the
    default DVC remote (``--no-cache`` when there is none). None when pushed, else the one-line reason."""
    has_dvc_remote = subprocess.run(["dvc", "remote", "default"], cwd=repo, capture_output=True, text=True)
    cmd = ["dvc", "--wait-for-lock", "exp", "push", remote, exp_name]
    if has_dvc_remote.returncode != 0 or not has_dvc_remote.stdout.strip():
        cmd.append("--no-cache")
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return " ".join((proc.stderr or proc.stdout).split())[-300:] or f"exited with {proc.returncode}"
