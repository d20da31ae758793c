"""The sweep's parts that need no DVC run: GPU assignment, the trial command, failure reasons, storage,
and the controller on trials that the params schema rejects (recorded failed, nothing run)."""

from __future__ import annotations

import pytest
import yaml

from reprokit.core.errors import SweepError
from reprokit.core.strict_yaml import StrictLoader
from reprokit.core.study_storage import open_storage, public_url
from reprokit.tune.devices import DevicePool, plan_jobs, visible_gpus
from reprokit.tune.trials import exp_command, failure_reason, format_value
from tests.integration.conftest import mirror_free_port
from tests.projects import make_project_copy, run, write_params


def test_each_trial_gets_its_own_gpus_and_jobs_are_capped_by_them():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5, 7"}) == ["2", "5", "7"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({}, count=lambda: 3) == ["0", "1", "2"]
    assert plan_jobs(4, "cpu", 1, []) == (4, None)
    assert plan_jobs(2, "auto", 1, []) == (2, None)  # no GPU: the trials run on the CPU
    jobs, note = plan_jobs(4, "gpu", 1, ["0", "1", "2"])
    assert jobs == 3 and "capped at 3" in note
    assert plan_jobs(4, "cuda", 2, ["0", "1", "2", "3", "4"])[0] == 2  # two GPUs per trial
    with pytest.raises(SweepError, match="no GPU is visible"):
        plan_jobs(1, "gpu", 1, [])
    pool = DevicePool(["0", "1", "2"], per_trial=1)
    held = [pool.take() for _ in range(3)]
    assert sorted(sum(held, [])) == ["0", "1", "2"]  # never shared
    with pytest.raises(SweepError):
        pool.take()
    pool.give_back(held[1])
    assert pool.take() == held[1]
    assert DevicePool([], 1).take() == []  # CPU: no CUDA_VISIBLE_DEVICES set


def test_the_trial_command_is_a_named_temp_experiment_with_values_that_read_back_typed():
    cmd = exp_command(
        "s-3",
        {
            "train.lr": 5e-05,
            "train.epochs": 2,
            "train.loss.args.miner": "hard",
            "train.resume": False,
            "logger.sweep.trial": None,
            "model.name": "models:build",
        },
    )
    assert cmd[:7] == ["dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", "s-3"]
    sets = dict(a.removeprefix("++").split("=", 1) for a in cmd[8::2])
    assert all(a.startswith("++") for a in cmd[8::2])  # adds a key params.yaml leaves commented out
    back = {k: yaml.load(v, Loader=StrictLoader) for k, v in sets.items()}  # as params.yaml is read
    assert back == {
        "train.lr": 5e-05,
        "train.epochs": 2,
        "train.loss.args.miner": "hard",
        "train.resume": False,
        "logger.sweep.trial": None,
        "model.name": "models:build",
    }
    assert format_value("1e-3") == '"1e-3"'  # a string stays a string


def test_a_failure_reason_is_the_stage_error_line_else_dvc_s(tmp_path):
    log = tmp_path / "t.log"
    log.write_text(
        "noise\ntrain: error: training diverged: the loss is nan at step 3 (hint: lower train.lr)\n"
        "ERROR: failed to reproduce 'train': failed to run: python -m stages.train, exited with 1\n"
    )
    assert failure_reason(log, 255) == "train: training diverged: the loss is nan at step 3 (hint: lower train.lr)"
    log.write_text("ERROR: Experiment conflicts with existing experiment 's-1'.\n")
    assert failure_reason(log, 255) == "Experiment conflicts with existing experiment 's-1'."
    log.write_text("")
    assert failure_reason(log, 9).startswith("dvc exp run exited with 9")


def test_storage_urls_lose_their_password_and_sqlite_is_refused(tmp_path):
    assert public_url("postgresql://ann:s3cret@db.example:5432/sweeps") == "postgresql://ann@db.example:5432/sweeps"
    assert public_url("/repo/.reprokit/sweeps/a.journal") == "/repo/.reprokit/sweeps/a.journal"
    with pytest.raises(SweepError, match="SQLite is not safe for parallel trials"):
        open_storage(f"sqlite:///{tmp_path}/s.db")
    port = mirror_free_port()
    with pytest.raises(SweepError) as info:
        open_storage(f"postgresql://ann:s3cret@127.0.0.1:{port}/sweeps")
    line = info.value.one_line()
    assert (
        line.startswith(f"cannot reach the study storage postgresql://ann@127.0.0.1:{port}/sweeps: ")
        and "s3cret" not in line
    )
    journal = open_storage(str(tmp_path / "deep" / "s.journal"))
    assert type(journal).__name__ == "JournalStorage"


REJECTED = """\
sampler: grid
space:
  train.n_instances: {choice: [4]}
  data.digits.views: {choice: [2, 3]}
tune_fraction: 0.2
"""


def test_combinations_the_schema_rejects_are_recorded_failed_without_running(tmp_path):
    # Each value passes alone (n_instances 4 with views 4; views 2 or 3 with n_instances 2); together they do not.
    repo = make_project_copy(tmp_path / "repo", {"train": {"n_instances": 2}})
    (repo / "sweeps").mkdir()
    (repo / "sweeps" / "bad.yaml").write_text(REJECTED)
    proc = run(["reprokit", "sweep", "sweeps/bad.yaml"], repo, check=False, timeout=300)
    assert proc.returncode == 1, proc.stderr  # no trial completed
    import optuna

    study = optuna.load_study(study_name="bad", storage=open_storage(str(repo / ".reprokit/sweeps/bad.journal")))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    for t in study.trials:
        reason = t.user_attrs["reason"]
        assert reason.startswith("params rejected by params.yaml's schema") and "train.n_instances must be ≤" in reason
        assert reason in proc.stderr
    assert not (repo / ".dvc" / "tmp" / "exps").exists()  # no dvc exp run started
    assert run(["git", "status", "--porcelain"], repo).stdout.strip() == "?? sweeps/"
    write_params(repo, {})  # params.yaml still parses as it was


def test_an_unreachable_database_stops_the_sweep_before_any_trial_in_one_line(tmp_path):
    repo = make_project_copy(tmp_path / "repo")
    (repo / "sweeps").mkdir()
    (repo / "sweeps" / "g.yaml").write_text("sampler: grid\nspace:\n  train.lr: {choice: [0.001, 0.01]}\n")
    port = mirror_free_port()
    proc = run(
        ["reprokit", "sweep", "sweeps/g.yaml", "--storage", f"postgresql://ann:s3cret@127.0.0.1:{port}/db"],
        repo,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"reprokit: error: cannot reach the study storage postgresql://ann@127.0.0.1:{port}/db: "
    ), proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert not (repo / ".dvc" / "tmp" / "exps").exists()


def test_a_new_study_whose_names_are_taken_by_an_earlier_one_stops_in_one_line(tmp_path):
    repo = make_project_copy(tmp_path / "repo")
    (repo / "sweeps").mkdir()
    (repo / "sweeps" / "g.yaml").write_text("sampler: grid\nspace:\n  train.lr: {choice: [0.001, 0.01]}\n")
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    run(["git", "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/g-0", head], repo)  # an earlier study's trial 0
    proc = run(["reprokit", "sweep", "sweeps/g.yaml"], repo, check=False, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "reprokit: error: experiments g-0 already exist on this commit from an earlier study 'g' (its journal is gone), "
        "and a trial would take their names (hint: remove them (`dvc exp remove g-0`), or rename the sweep file)"
    ]
