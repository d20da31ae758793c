"""Many experiments and teams on DVC's own machinery (issue 7, parts 3 and 4).

- Three experiments queued with different params and run side by side by `dvc queue start -j 2`:
  each has its own metrics in `dvc exp show` and its own TensorBoard run in the ORIGINAL repo's
  `logs/tensorboard/` (DVC runs queued experiments in throw-away copies under `.dvc/tmp/exps/`).
- A local-folder DVC remote: push from one clone (outputs and run-cache), pull into a fresh
  `git clone`, and `dvc repro` has nothing left to run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.projects import make_project_copy, run, subprocess_env, write_params

pytestmark = pytest.mark.slow

# About 30 s per pipeline run on one free core: 120 source digits, one short epoch.
TINY_PARAMS: dict[str, Any] = {
    "data": {"digits": {"n_source": 120}},
    "train": {"epochs": 1, "n_labels": 16},
    "visualize": {"n_queries": 2},
    # A mirror failure must fail the experiment, not hide behind a warning.
    "logger": {"strict": True},
}
MARGINS = {"margin-010": 0.1, "margin-030": 0.3, "margin-060": 0.6}
QUEUE_TIMEOUT_S = 1200.0  # three tiny pipelines, two at a time, on a shared 2-core machine
TASK_STATES = ("Queued", "Running", "Success", "Failed")


# ---------------------------------------------------------------- queue helpers


def queue_states(repo: Path) -> dict[str, str]:
    """Experiment name -> task state, parsed from `dvc queue status` (one row per task)."""
    out = run(["dvc", "queue", "status"], repo, timeout=120).stdout
    states = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[-1] in TASK_STATES:
            states[words[1]] = words[-1]
    return states


def wait_for_queue(repo: Path, names: set[str], timeout_s: float) -> tuple[dict[str, str], int]:
    """Poll until every task in ``names`` has finished; return final states and the most seen running."""
    deadline = time.monotonic() + timeout_s
    most_running = 0
    while True:
        states = queue_states(repo)
        most_running = max(most_running, sum(s == "Running" for s in states.values()))
        if names <= states.keys() and all(states[n] in ("Success", "Failed") for n in names):
            return states, most_running
        if time.monotonic() > deadline:
            raise AssertionError(f"queued experiments not finished after {timeout_s:.0f}s: {states}")
        time.sleep(3)


def processes_in(repo: Path) -> list[psutil.Process]:
    """Processes working inside ``repo`` (queue workers and the experiments they run)."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and (cwd == str(repo) or cwd.startswith(f"{repo}/")):
            found.append(proc)
    return found


def stop_queue(repo: Path) -> list[int]:
    """Stop the queue workers this test started; kill, by pid, whatever still runs in ``repo``."""
    run(["dvc", "queue", "stop", "--kill"], repo, check=False, timeout=120)
    _, alive = psutil.wait_procs(processes_in(repo), timeout=20)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    return [p.pid for p in alive]


def start_queue(repo: Path, workers: int, log: Path) -> None:
    """`dvc queue start -j N`, returning once the workers are started.

    The workers are detached but inherit the command's stdout/stderr: with pipes (as
    `subprocess.run(capture_output=True)` uses) waiting for the command's output would wait
    for the workers to exit, i.e. for the whole queue. A file does not hold anyone up.
    """
    with open(log, "w") as out:
        proc = subprocess.run(
            ["dvc", "queue", "start", "-j", str(workers)],
            cwd=repo,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
            timeout=120,
        )
    assert proc.returncode == 0, log.read_text()[-3000:]


@pytest.fixture
def queue_repo(tmp_path):
    repo = make_project_copy(tmp_path / "repo", TINY_PARAMS).resolve()
    yield repo
    stop_queue(repo)


def experiments(show: list[dict]) -> dict[str, dict]:
    """`dvc exp show --json` -> experiment name -> its rev record (rev, params, metrics)."""
    out = {}
    for commit in show:
        for exp in commit.get("experiments") or []:
            rev = exp["revs"][0]
            out[exp.get("name") or rev["name"]] = rev
    return out


def cached_output(repo: Path, exp_rev: str, stage: str, path: str) -> bytes:
    """The bytes of a DVC-cached output of ``stage`` as recorded in the experiment's dvc.lock."""
    lock = yaml.safe_load(run(["git", "show", f"{exp_rev}:dvc.lock"], repo).stdout)
    md5 = next(o["md5"] for o in lock["stages"][stage]["outs"] if o["path"] == path)
    return (repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_bytes()


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# ---------------------------------------------------------------- 3. parallel experiments


@pytest.mark.long  # three experiments through DVC's queue
def test_queued_experiments_run_in_parallel_each_with_own_metrics_and_tensorboard_run(queue_repo):
    repo = queue_repo
    for name, margin in MARGINS.items():
        run(["dvc", "exp", "run", "--queue", "-S", f"train.loss.args.margin={margin}", "-n", name], repo)
    # Queueing must not touch the workspace: the overrides live in the queued experiments only.
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["loss"]["args"]["margin"] == 0.5

    started = time.monotonic()
    start_queue(repo, workers=2, log=repo.parent / "queue-start.log")
    states, most_running = wait_for_queue(repo, set(MARGINS), QUEUE_TIMEOUT_S)
    elapsed = time.monotonic() - started
    failed = [n for n in MARGINS if states[n] != "Success"]
    logs = {n: run(["dvc", "queue", "logs", n], repo, check=False).stdout[-3000:] for n in failed}
    assert not failed, f"experiments failed: {failed}\n{logs}"
    # The cap from polling; the overlap from the experiments' own records (training start/end times).
    assert most_running <= 2, f"`-j 2` must run at most two experiments at once; saw {most_running}"
    print(f"\n3 queued experiments, -j 2: {elapsed:.0f}s")

    exps = experiments(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    assert set(MARGINS) <= exps.keys(), f"dvc exp show lists {sorted(exps)}"

    tb_root = repo / "logs" / "tensorboard"
    overall_by_exp, run_dirs, intervals = {}, set(), {}
    for name, margin in MARGINS.items():
        rev = exps[name]
        assert rev["data"]["params"]["params.yaml"]["data"]["train"]["loss"]["args"]["margin"] == margin
        metrics = rev["data"]["metrics"]
        train_loss = metrics["runs/train/metrics.json"]["data"]["loss"]
        overall = metrics["runs/validate/metrics.json"]["data"]["overall"]
        overall_by_exp[name] = overall

        # The experiment's own training identity (a DVC output) is in its one TensorBoard run.
        identity = json.loads(cached_output(repo, rev["rev"], "train", "runs/train/run.json"))
        assert identity["run_name"].startswith(f"{name}-"), identity
        (run_dir,) = tb_root.glob(f"{name}-*")
        assert json.loads((run_dir / "artifacts/train/run.json").read_text()) == identity
        intervals[name] = (identity["started_at"], identity["finished_at"])
        assert list(run_dir.glob("events.out.tfevents.*")), f"no event file in {run_dir}"
        run_dirs.add(run_dir)

        logged = scalars(run_dir)
        epoch_loss = logged["train_epoch/loss"]
        assert len(epoch_loss) == TINY_PARAMS["train"]["epochs"]
        assert epoch_loss[-1][1] == pytest.approx(train_loss, rel=1e-6), (name, epoch_loss, train_loss)
        for metric, value in overall.items():
            assert [v for _, v in logged[f"validate/{metric}"]] == [pytest.approx(value, rel=1e-6)], (name, metric)

    # `-j 2` ran experiments at the same time: some two trainings overlap in time, by their own clocks.
    overlaps = [
        max(0.0, min(intervals[a][1], intervals[b][1]) - max(intervals[a][0], intervals[b][0]))
        for a, b in itertools.combinations(MARGINS, 2)
    ]
    assert max(overlaps) > 0, f"no two experiments trained at the same time: {intervals}"
    # Nothing collided: one folder per experiment, nothing else published beside them.
    assert len(run_dirs) == 3
    assert {p for p in tb_root.iterdir() if not p.name.startswith(".")} == run_dirs
    for a, b in itertools.combinations(MARGINS, 2):
        assert overall_by_exp[a] != overall_by_exp[b], f"{a} and {b} report the same validation metrics"
    # The experiments wrote nothing into the user's workspace but the (git-ignored) logs.
    assert run(["git", "status", "--porcelain"], repo).stdout == ""
    assert not (repo / "runs").exists()

    lingering = stop_queue(repo)
    assert not processes_in(repo), f"processes still running in {repo} after `dvc queue stop`: {lingering}"


# ---------------------------------------------------------------- 4. shared remote


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def outputs_digest(repo: Path) -> dict[str, str]:
    return {f"{top}/{k}": v for top in ("runs", "data") for k, v in tree_digest(repo / top).items()}


def test_fresh_clone_pulls_outputs_from_local_remote_and_has_nothing_to_rerun(pipeline_copy, tmp_path):
    origin = pipeline_copy.resolve()
    remote = tmp_path / "dvc-remote"

    run(["dvc", "remote", "add", "-d", "shared", str(remote)], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "pipeline results + shared DVC remote"], origin)
    started = time.monotonic()
    run(["dvc", "push"], origin)
    run(["dvc", "push", "--run-cache"], origin)
    push_s = time.monotonic() - started
    assert any((remote / "files" / "md5").rglob("*")), "dvc push put no file into the remote"
    assert any((remote / "runs").rglob("*")), "dvc push --run-cache put no run-cache entry into the remote"
    expected = outputs_digest(origin)

    clone = tmp_path / "teammate"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "runs/train/model.ckpt").exists() and not (clone / "data/digits").exists()
    assert not (clone / ".dvc/cache").exists(), "a fresh clone must not share the origin's cache"

    started = time.monotonic()
    run(["dvc", "pull"], clone)
    pull_s = time.monotonic() - started
    assert outputs_digest(clone) == expected

    repro = run(["dvc", "repro"], clone)
    assert "Running stage" not in repro.stdout + repro.stderr, repro.stdout
    assert "Data and pipelines are up to date" in repro.stdout
    status = run(["dvc", "status"], clone)
    assert status.stdout.strip() == "Data and pipelines are up to date.", status.stdout
    assert run(["git", "status", "--porcelain"], clone).stdout == ""
    assert outputs_digest(clone) == expected

    print(f"\ndvc push + push --run-cache: {push_s:.1f}s; dvc pull: {pull_s:.1f}s")


def test_run_cache_round_trip_restores_a_teammates_variant_without_running_it(pipeline_copy, tmp_path):
    """A variant someone ran and pushed (outputs + run-cache) is restored, not re-run, by `dvc repro --pull`."""
    origin = pipeline_copy.resolve()
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "pipeline results + shared DVC remote"], origin)
    run(["dvc", "push"], origin)  # what the commit records, for the teammate's clone
    committed = (origin / "params.yaml").read_text()

    # The variant: never committed, only run and pushed.
    write_params(origin, {"visualize": {"n_queries": 2}})
    variant = run(["dvc", "repro"], origin).stdout
    assert "Running stage 'visualize'" in variant and "Running stage 'train'" not in variant
    figure = (origin / "runs/visualize/worst_queries.png").read_bytes()
    run(["dvc", "push"], origin)
    run(["dvc", "push", "--run-cache"], origin)
    (origin / "params.yaml").write_text(committed)

    clone = tmp_path / "teammate"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    run(["dvc", "pull", "--run-cache"], clone)
    write_params(clone, {"visualize": {"n_queries": 2}})
    restored = run(["dvc", "repro", "--pull"], clone)
    out = restored.stdout + restored.stderr
    assert "Running stage 'visualize'" not in out, out
    assert "Stage 'visualize' is cached - skipping run, checking out outputs" in out, out
    assert (clone / "runs/visualize/worst_queries.png").read_bytes() == figure
