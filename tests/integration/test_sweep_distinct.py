"""Two workers on one PostgreSQL study never train the same params, and propose what one worker does.

Issue 30: every worker used to build its sampler from the sweep's seed, so two workers drew the
same sequence and each set of params trained twice. Here two clones sweep one study on a real
PostgreSQL server, one with ``--jobs 2`` and one with ``--jobs 1``; a third clone sweeps the same
file alone with ``--jobs 1`` on its own journal. For ``random``, ``tpe`` (past its start-up too)
and ``grid``: every complete trial's params are distinct, and the set equals the lone worker's.

The trials are real ``dvc exp run --temp`` experiments of a one-stage project (the real
params.yaml, so the sweep file is checked against the real schema) whose stage scores the params
by a fixed formula: what is under test is who proposes what, and a training would only cost time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reprokit.core.study_storage import open_storage
from tests.integration.test_sweep import load_study, write_sweep
from tests.integration.test_sweep_postgres import postgres_url  # noqa: F401 - the fixture
from tests.projects import PROJECT_ROOT, built_once, commit_all, copy_repo, run, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.long]  # 8 experiments and 3 controllers per sampler

OBJECTIVE = '''\
"""The trial's score: a fixed, smooth function of the swept params (best near lr 3e-3, margin 0.3)."""
import json, math, pathlib, yaml

p = yaml.safe_load(open("params.yaml"))
lr, margin = p["train"]["lr"], p["train"]["loss"]["args"]["margin"]
score = 1 / (1 + (math.log10(lr) + 2.5) ** 2 + 4 * (margin - 0.3) ** 2)
out = pathlib.Path("runs/validate/metrics.json")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"overall": {"map@r": score}}))
'''

DVC_YAML = """\
stages:
  objective:
    cmd: python objective.py
    deps: [objective.py]
    params: [train.lr, train.loss.args.margin]
    metrics:
      - runs/validate/metrics.json: {cache: false}
"""

SWEEPS = {
    "random": """\
sampler: random
trials: 4
seed: 1
space:
  train.lr: {low: 1.0e-3, high: 1.0e-2, log: true}
  train.loss.args.margin: {low: 0.1, high: 0.6}
""",
    # Trials 0 and 1 are the seeded start-up; 2 learns from 0, 3 from 0 and 1 (parallel: 2).
    "tpe": """\
sampler: {name: tpe, args: {n_startup_trials: 2, parallel: 2}}
trials: 4
seed: 1
space:
  train.lr: {low: 1.0e-4, high: 3.0e-2, log: true}
  train.loss.args.margin: {low: 0.1, high: 0.6}
""",
    "grid": """\
sampler: grid
seed: 1
space:
  train.lr: {choice: [0.001, 0.01]}
  train.loss.args.margin: {choice: [0.2, 0.5]}
""",
}


@pytest.fixture(scope="session")
def scored_base(tmp_path_factory) -> Path:
    def build(repo: Path) -> None:
        repo.mkdir(parents=True)
        shutil.copy2(PROJECT_ROOT / "params.yaml", repo / "params.yaml")
        (repo / "objective.py").write_text(OBJECTIVE)
        (repo / "dvc.yaml").write_text(DVC_YAML)
        (repo / ".gitignore").write_text(".reprokit/\n")
        run(["git", "init", "-q", "-b", "main"], repo)
        run(["dvc", "init", "-q"], repo)
        commit_all(repo, "a one-stage project scored by a formula")

    return built_once(tmp_path_factory, "sweep-scored", build).resolve()


def _proposed(trials) -> list[tuple]:
    """Each complete trial's params, comparable across storages (floats by their exact repr)."""
    return sorted(
        tuple((k, repr(v)) for k, v in sorted(t.params.items())) for t in trials if t.state.name == "COMPLETE"
    )


@pytest.mark.parametrize("sampler", list(SWEEPS))
def test_two_workers_on_one_study_train_distinct_params_and_propose_what_one_worker_does(
    sampler,
    scored_base,
    postgres_url,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    clones = []
    for name in ("a", "b"):
        clone = copy_repo(scored_base, tmp_path / name)
        write_sweep(clone, "dist", SWEEPS[sampler])
        clones.append(clone)
    workers = [
        subprocess.Popen(
            ["reprokit", "sweep", "sweeps/dist.yaml", "--storage", postgres_url, "--jobs", jobs],
            cwd=clone,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for clone, jobs in zip(clones, ("2", "1"))
    ]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    import optuna

    trials = optuna.load_study(study_name="dist", storage=open_storage(postgres_url)).trials
    counted = [t for t in trials if not t.user_attrs.get("discarded")]
    assert [t.state.name for t in counted] == ["COMPLETE"] * 4, [(t.number, t.state.name, t.user_attrs) for t in trials]
    together = _proposed(counted)
    assert len(set(together)) == 4, together  # no params trained twice
    assert sorted(t.user_attrs["proposal"] for t in counted) == [0, 1, 2, 3]

    alone = copy_repo(scored_base, tmp_path / "alone")
    write_sweep(alone, "dist", SWEEPS[sampler])
    run(["reprokit", "sweep", "sweeps/dist.yaml", "--jobs", "1"], alone, timeout=900)
    assert _proposed(load_study(alone, "dist").trials) == together, "\n".join(outputs)
