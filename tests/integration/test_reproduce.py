"""`reprokit reproduce` and the reproducibility artifacts, on real git + DVC repositories."""

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.projects import EXPERIMENT, commit_all, copy_repo, make_project_copy, run, subprocess_env, write_params

pytestmark = pytest.mark.slow

TINY = {
    "data": {"digits": {"n_source": 120}},
    "train": {"epochs": 1, "n_labels": 16},
    "visualize": {"n_queries": 2},
}


def reprokit(args: list[str], cwd: Path, check: bool = False):
    return run([sys.executable, "-m", "reprokit.cli", *args], cwd, check=check)


def _snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts[:1] and ".dvc" not in p.relative_to(repo).parts[:1]
    }


@pytest.fixture(scope="module")
def history_repo(experiment_repo: Path, tmp_path_factory) -> Path:
    """Two committed pipeline runs: epochs=2 (HEAD~1, the reduced pipeline), then epochs=1 (HEAD).

    HEAD commits what `dvc exp run -S train.epochs=1` left in the workspace of `experiment_repo`,
    so the two commits record different metrics (a reproduction of the wrong one would differ).
    """
    repo = copy_repo(experiment_repo, tmp_path_factory.mktemp("history") / "repo")
    commit_all(repo, "run 1 epoch")
    return repo


def test_reproduce_previous_commit_matches_and_leaves_the_workspace_alone(history_repo: Path):
    before_files = _snapshot(history_repo)
    before_status = run(["git", "status", "--porcelain"], history_repo).stdout
    proc = reprokit(["reproduce", "HEAD~1"], history_repo)
    assert proc.returncode == 0, proc.stderr
    assert "DIFFERS" not in proc.stdout
    assert "runs/validate/metrics.json:overall.cmc@1" in proc.stdout
    assert "runs/train/metrics.json:loss" in proc.stdout
    assert "running stage train" in proc.stderr  # progress
    assert _snapshot(history_repo) == before_files
    assert run(["git", "status", "--porcelain"], history_repo).stdout == before_status


def test_hand_edited_metric_is_reported_as_different(history_repo: Path, tmp_path: Path):
    repo = copy_repo(history_repo, tmp_path / "repo")
    path = repo / "runs/validate/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["overall"]["map@5"] += 0.125
    path.write_text(json.dumps(metrics, indent=2))
    commit_all(repo, "edit a metric by hand")
    proc = reprokit(["reproduce", "HEAD"], repo)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    line = next(text for text in lines if text.startswith("runs/validate/metrics.json:overall.map@5"))
    assert "DIFFERS" in line and "-0.125" in line
    others = [text for text in lines if "metrics.json:" in text and "overall.map@5" not in text]
    assert others and all(text.rstrip().endswith("ok") for text in others)


def test_reproduce_a_dvc_experiment_by_name(experiment_copy: Path):
    # experiment_copy: the committed baseline run + `dvc exp run -S train.epochs=1 -n one-epoch`.
    repo = experiment_copy
    run(["git", "checkout", "--", "."], repo)  # the workspace keeps the applied exp otherwise
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"] == 2
    proc = reprokit(["reproduce", EXPERIMENT], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DIFFERS" not in proc.stdout


def test_unknown_revision_is_one_clear_line(history_repo: Path):
    proc = reprokit(["reproduce", "no-such-rev"], history_repo)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "reprokit: error: unknown revision 'no-such-rev': not a commit, branch, tag or DVC experiment "
        "(hint: list them with `git log --oneline` or `dvc exp show -A`)"
    ]


def test_revision_without_metrics_is_refused(tmp_path: Path):
    repo = make_project_copy(tmp_path / "repo", TINY)
    proc = reprokit(["reproduce", "HEAD"], repo)
    assert proc.returncode == 1
    assert "has no recorded metrics" in proc.stderr and "Traceback" not in proc.stderr


def test_code_snapshot_patch_rebuilds_the_exact_tracked_files(pipeline_copy: Path, tmp_path: Path):
    run(["git", "add", "-A"], pipeline_copy)
    run(["git", "commit", "-qm", "base"], pipeline_copy)
    stage = pipeline_copy / "stages/visualize.py"
    stage.write_text(stage.read_text() + "\n# an uncommitted change\n")
    (pipeline_copy / "untracked_notes.txt").write_text("never in the snapshot")
    run(["dvc", "repro", "train", "--force", "--single-item"], pipeline_copy)
    art = pipeline_copy / "runs/train/artifacts"
    git = json.loads((art / "git.json").read_text())
    assert git["dirty"] is True
    assert "an uncommitted change" in (art / "diff.patch").read_text()
    with tarfile.open(art / "code.tar.gz") as tar:
        snapshot = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert "untracked_notes.txt" not in snapshot
    assert b"an uncommitted change" in snapshot["stages/visualize.py"]

    rebuilt = tmp_path / "rebuilt"
    run(["git", "clone", "-q", str(pipeline_copy), str(rebuilt)], tmp_path)
    run(["git", "checkout", "-q", git["commit"]], rebuilt)
    run(["git", "apply", str(art / "diff.patch")], rebuilt)
    tracked = [f for f in run(["git", "ls-files", "-z"], rebuilt).stdout.split("\0") if f]
    for rel in tracked:
        if rel in snapshot:
            assert (rebuilt / rel).read_bytes() == snapshot[rel], rel
    assert set(snapshot) <= set(tracked)
    tags = json.loads((art / "tags.json").read_text())
    assert tags["auto"]["git_commit"] == git["commit"] and tags["auto"]["git_dirty"] == "true"


def test_api_token_never_lands_in_files_or_console(pipeline_copy: Path):
    write_params(pipeline_copy, {"logger": {"name": "tensorboard", "args": {"api_token": "abc123"}}})
    # Earlier runs' mirrors hold code snapshots of this very test file (which spells the token).
    shutil.rmtree(pipeline_copy / "logs", ignore_errors=True)
    proc = run(["dvc", "repro", "--force"], pipeline_copy, env=subprocess_env())
    console = proc.stdout + proc.stderr
    assert "abc123" not in console
    for folder in ("runs", "logs"):
        for path in (pipeline_copy / folder).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".gz":
                    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                        for m in tar.getmembers():
                            if m.isfile():
                                assert b"abc123" not in tar.extractfile(m).read(), (path, m.name)
                    continue
                assert b"abc123" not in data, path


def test_reproducing_never_publishes_to_the_tracker_and_a_dead_one_costs_nothing(history_repo: Path, tmp_path: Path):
    from tests.integration.conftest import mirror_free_port

    repo = copy_repo(history_repo, tmp_path / "repo")
    dead = f"http://127.0.0.1:{mirror_free_port()}"  # nothing listens there
    write_params(repo, {"logger": {"name": "mlflow", "args": {"tracking_uri": dead}, "strict": True}})
    commit_all(repo, "pipeline with a (now dead) MLflow tracker")
    proc = reprokit(["reproduce", "HEAD"], repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reproduced:" in proc.stderr and "NOT reproduced" not in proc.stderr
    assert "throwaway csv logger" in proc.stderr
    assert not (repo / "mlruns").exists() and not (repo / "logs" / "mlflow.db").exists()
