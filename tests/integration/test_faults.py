"""Bad input and faults at the stage level: one clear line, nothing half-written, DVC not fooled."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.projects import run, subprocess_env, write_params

pytestmark = pytest.mark.slow


def _dataset(root: Path) -> pd.DataFrame:
    (root / "img").mkdir(parents=True)
    rows = []
    for label in range(6):
        for view in range(2):
            path = f"img/{label}_{view}.png"
            Image.new("L", (8, 8), color=label * 30 + view).save(root / path)
            split = "train" if label < 3 else "validation"
            flag = "" if split == "train" else "True"
            rows.append(
                {"label": label, "path": path, "split": split, "is_query": flag, "is_gallery": flag, "category": "a"}
            )
    return pd.DataFrame(rows)


def _drop_col(df):
    return df.drop(columns=["split"])


def _float_label(df):
    df = df.astype({"label": object})
    df.loc[4, "label"] = 1.5
    return df


def _bad_split(df):
    df.loc[7, "split"] = "test"
    return df


def _missing_flag(df):
    df.loc[8, "is_query"] = ""
    return df


def _neither(df):
    df.loc[9, ["is_query", "is_gallery"]] = "False"
    return df


def _query_without_gallery(df):
    df.loc[[10, 11], "is_gallery"] = "False"
    return df


def _missing_images(df):
    df.loc[[0, 6], "path"] = ["img/nope.png", "img/gone.png"]
    return df


def _outside_root(df):
    df.loc[2, "path"] = "../secret.png"
    return df


def _partial_bbox(df):
    df["x_1"] = 0
    df["x_2"] = 4
    return df


def _empty_validation(df):
    return df[df["split"] == "train"]


def _duplicated(df):
    return pd.concat([df, df.iloc[[3]]], ignore_index=True)


BROKEN = {
    "missing column": (_drop_col, "split"),
    "non-integer label": (_float_label, "label"),
    "unknown split": (_bad_split, "split"),
    "missing is_query": (_missing_flag, "is_query"),
    "neither query nor gallery": (_neither, "is_query"),
    "query label not in gallery": (_query_without_gallery, "label"),
    "missing image files": (_missing_images, "path"),
    "path leaves root": (_outside_root, "path"),
    "partial bounding box": (_partial_bbox, "x_1"),
    "empty validation split": (_empty_validation, "split"),
    "duplicated rows": (_duplicated, "row"),
}


PROJECT = Path(__file__).resolve().parents[2]


def _validate_stage(root: Path) -> tuple[Path, int, str]:
    """The real validate stage on ``root``'s params; (root, exit code, stderr)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.validate",
            "--params",
            str(root / "params.yaml"),
            "--out",
            str(root / "runs/validate"),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )
    return root, proc.returncode, proc.stderr


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """Each broken dataframe through the real validate stage, one process per case, a folder per case.

    The processes fail in their checks, before any compute: their cost is the interpreter and the
    torch import, one core each, so they run one per core side by side (not all at once: eleven
    imports at a time need gigabytes on a machine others share). Per case: (folder, exit code, stderr).
    """
    roots = {}
    for kind in sorted(BROKEN):
        breaker, _ = BROKEN[kind]
        root = tmp_path_factory.mktemp("broken")
        data = root / "data"
        breaker(_dataset(data)).to_csv(data / "df.csv", index=False)
        params = {"data": {"dataframe": str(data / "df.csv"), "generate": [], "image_size": 8}}
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        roots[kind] = root
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {kind: pool.submit(_validate_stage, root) for kind, root in roots.items()}
        return {kind: future.result() for kind, future in futures.items()}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_dataframe_stops_the_stage_with_one_line(kind, broken_runs):
    _, column = BROKEN[kind]
    root, code, stderr = broken_runs[kind]
    assert code == 1
    # The params file is not this checkout's params.yaml: the dependency check says it skips (a note).
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("validate: note: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("validate: error: ") and column in lines[0]
    assert "Traceback" not in stderr
    assert not (root / "runs").exists()


def test_nan_loss_fails_train_and_dvc_does_not_record_it(pipeline_copy: Path):
    # With Adam a lr of 1e12 only collapses the embedding (steps are bounded by lr); 1e30
    # overflows the weights within a step or two and the loss turns NaN.
    write_params(pipeline_copy, {"train": {"lr": 1e30}})
    proc = run(["dvc", "repro"], pipeline_copy, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "train: error: training loss became nan" in out or "train: error: training loss became inf" in out
    assert "hint: lower train.lr" in out
    assert not (pipeline_copy / "runs/train/metrics.json").exists()
    lock = yaml.safe_load((pipeline_copy / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["lr"] != 1e30


def test_killed_training_leaves_nothing_dvc_takes_as_complete(pipeline_copy: Path, pipeline_repo: Path):
    write_params(pipeline_copy, {"train": {"epochs": 3}})
    step_tsv = pipeline_copy / "runs/train/plots/step.tsv"
    step_tsv.unlink()  # so that its reappearance marks this run's first epoch end
    env = subprocess_env()
    proc = subprocess.Popen(
        ["dvc", "repro", "train"],
        cwd=pipeline_copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Wait until the first epoch has been written (mid-training), then SIGKILL the whole group.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not step_tsv.exists():
        time.sleep(0.2)
    assert step_tsv.exists(), "training never reached its first epoch end"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (pipeline_copy / "runs/train/metrics.json").exists()
    status = run(["dvc", "status", "train"], pipeline_copy).stdout
    assert "changed" in status or "modified" in status or "deleted" in status
    assert "Running stage 'train'" in run(["dvc", "repro", "train"], pipeline_copy).stdout  # not taken as complete
    # The uninterrupted reference: the same params, forced.
    reference = json.loads((pipeline_copy / "runs/train/metrics.json").read_text())
    run(["dvc", "repro", "--force", "train"], pipeline_copy)
    assert json.loads((pipeline_copy / "runs/train/metrics.json").read_text()) == reference


def test_killed_training_resumes_from_its_last_checkpoint(pipeline_copy: Path, tmp_path: Path):
    write_params(pipeline_copy, {"train": {"epochs": 3, "resume": True}})
    reference = tmp_path / "reference"
    run(["cp", "-a", str(pipeline_copy), str(reference)], tmp_path)
    run(["dvc", "repro", "train"], reference)  # uninterrupted, same params

    proc = subprocess.Popen(
        ["dvc", "repro", "train"],
        cwd=pipeline_copy,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((pipeline_copy / ".reprokit/resume").glob("*/last.ckpt")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((pipeline_copy / ".reprokit/resume").glob("*/last.ckpt")), "no checkpoint was written"
    assert not (pipeline_copy / "runs/train/metrics.json").exists()

    resumed = run(["dvc", "repro", "train"], pipeline_copy)
    assert "train: resuming from" in resumed.stdout + resumed.stderr
    for rel in ("runs/train/metrics.json", "runs/train/plots/epoch.tsv"):
        assert (pipeline_copy / rel).read_bytes() == (reference / rel).read_bytes(), rel
    assert not list((pipeline_copy / ".reprokit/resume").glob("*/last.ckpt"))  # cleaned up when finished
