"""One pipeline run = one logger run, whatever stages re-ran; provenance is taken before training.

Real `dvc exp run` in a copy of the finished pipeline; the logger runs are read back from the
TensorBoard event files with tensorboard's own reader.

The first pipeline run on a training adopts the logger run train filled live (named after the
training, `runs/train/run.json`) and completes it under the pipeline run's own id and name; a later
pipeline run on the same training (a stage after train re-ran with other params) gets a logger run
of its own, complete, train curves replayed. Validation while training scores with validate's
distance and k lists, so those are train params now and changing one re-trains: the later-stage
change here is `visualize.n_queries` (it was `validate.distance`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from reprokit.core.fileio import read_json
from tests.integration import mirror_readers as readers
from tests.projects import run

pytestmark = pytest.mark.slow


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _local(repo: Path, report: dict) -> Path:
    """The report's log dir inside this copy of the project (the report was written in the original)."""
    return repo / "logs" / "tensorboard" / Path(report["where"]["log_dir"]).name


def test_a_later_stage_change_makes_a_new_logger_run_and_leaves_the_old_one(pipeline_copy):
    repo = pipeline_copy
    training = read_json(repo / "runs/train/run.json")
    first = read_json(repo / "runs/mirror/report.json")
    # The first pipeline run on this training took over the folder train filled live.
    assert first["where"]["adopted_live_run"] == training["run_name"]
    assert not (repo / "logs/tensorboard" / training["run_name"]).exists()
    first_dir = _local(repo, first)
    before = _tree_digest(first_dir)
    assert readers.read_tensorboard({"log_dir": first_dir}).params["visualize.n_queries"] == 3

    out = run(["dvc", "exp", "run", "-S", "visualize.n_queries=2"], repo)
    assert "Running stage 'train'" not in out.stdout + out.stderr  # only visualize and after re-ran
    assert read_json(repo / "runs/train/run.json") == training

    second = read_json(repo / "runs/mirror/report.json")
    assert second["ok"], second["error"]
    assert second["run_id"] != first["run_id"] and second["run_name"] != first["run_name"]
    assert "adopted_live_run" not in second["where"]  # nothing live left to adopt: a run of its own
    second_dir = Path(second["where"]["log_dir"])
    assert second_dir != first_dir
    # The earlier logger run is exactly as it was, byte for byte.
    assert _tree_digest(first_dir) == before
    view = readers.read_tensorboard(second["where"])
    assert view.params["visualize.n_queries"] == 2  # the params actually used
    assert view.params["train.epochs"] == yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"]
    # Complete: the training's curves replayed into it, every step once.
    steps = (repo / "runs/train/plots/step.tsv").read_text().splitlines()[1:]
    assert sorted(view.scalars["train/loss"]) == sorted(int(line.split("\t")[0]) for line in steps)
    assert not view.duplicates
    # Both runs still name the training run they came from.
    assert view.key_values["train_run_id"] == training["run_id"]


def test_replaying_a_finished_run_again_gives_the_same_logger_run(pipeline_copy):
    repo = pipeline_copy
    first = read_json(repo / "runs/mirror/report.json")
    before = readers.read_tensorboard({"log_dir": _local(repo, first)})
    run(["reprokit", "mirror"], repo)
    again = read_json(repo / "runs/mirror/report.json")
    assert again["run_id"] == first["run_id"] and Path(again["where"]["log_dir"]) == _local(repo, first)
    after = readers.read_tensorboard(again["where"])
    assert after.scalars == before.scalars and after.params == before.params and not after.duplicates
    assert [p.name for p in (repo / "logs/tensorboard").iterdir()] == [_local(repo, first).name]


def test_provenance_is_captured_before_training_not_after(pipeline_copy):
    """An edit made while the model trains is never recorded as the code that ran."""
    import subprocess
    import tarfile
    import time

    from tests.projects import subprocess_env

    repo = pipeline_copy
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "finished pipeline"], repo)
    readme = repo / "README.md"
    original = readme.read_text()
    proc = subprocess.Popen(
        ["python", "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train"],
        cwd=repo,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # The staged provenance is complete once env.json (written last) is there; training follows.
        while not list((repo / "runs/train").glob(".artifacts-*/env.json")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no staged provenance within 120 s"
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "training finished before the edit: the test proves nothing"
        readme.write_text(original + "\nedited during training\n")
        assert proc.wait(timeout=600) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    with tarfile.open(repo / "runs/train/artifacts/code.tar.gz") as tar:
        snapshot = tar.extractfile("README.md").read().decode()
    assert snapshot == original
    assert "edited during training" not in (repo / "runs/train/artifacts/diff.patch").read_text()
    assert read_json(repo / "runs/train/artifacts/git.json")["dirty"] is False
    assert not list((repo / "runs/train").glob(".artifacts-*")), "the staging folder was left behind"
