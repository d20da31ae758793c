"""The committed baseline, as a newcomer meets it: a clean `git clone` of this repository.

The repository ships the default pipeline's dvc.lock and its small deterministic results (the
metrics files and the per-category table), so that before running anything `dvc exp show` has a
baseline row with the default pipeline's numbers, and `reprokit reproduce HEAD` re-runs the
pipeline and proves every one of them. These tests fail when the committed baseline is not
the one this commit produces: regenerate it with `make baseline` and commit.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reprokit.core.config import flatten
from tests.projects import PROJECT_ROOT, run

FIX = "run `make baseline` and commit what it stages"
MAX_COLUMNS = 60
BASELINE_FILES = (
    "dvc.lock",
    "runs/train/metrics.json",
    "runs/validate/metrics.json",
    "runs/validate/plots/by_category.tsv",
)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A clone of this repository's current commit, as `git clone` gives it: nothing run, no DVC cache."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    clone = tmp_path_factory.mktemp("newcomer") / "reprokit"
    run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], clone.parent)
    run(["git", "checkout", "-q", head], clone)
    missing = [f for f in BASELINE_FILES if not (clone / f).is_file()]
    assert not missing, f"the commit has no committed baseline ({', '.join(missing)} missing): {FIX}"
    return clone


def _committed(clone: Path, rel: str) -> dict:
    return json.loads((clone / rel).read_text())


def test_exp_show_has_the_baseline_row_before_anything_runs(fresh_clone: Path):
    shown = json.loads(run(["dvc", "exp", "show", "--json"], fresh_clone).stdout)
    head = run(["git", "rev-parse", "HEAD"], fresh_clone).stdout.strip()
    (row,) = [r for r in shown if r["rev"] == head]
    data = row["data"]
    assert not row.get("error") and data["metrics"], f"dvc exp show has no metrics for HEAD: {FIX}"
    overall = data["metrics"]["runs/validate/metrics.json"]["data"]["overall"]
    committed = _committed(fresh_clone, "runs/validate/metrics.json")["overall"]
    assert overall["cmc@1"] == committed["cmc@1"] and 0.0 < overall["cmc@1"] <= 1.0
    assert (
        data["metrics"]["runs/train/metrics.json"]["data"]["loss"]
        == _committed(fresh_clone, "runs/train/metrics.json")["loss"]
    )


def test_exp_show_is_readable_at_most_60_columns_with_cmc_and_the_train_params(fresh_clone: Path):
    header = next(csv.reader(io.StringIO(run(["dvc", "exp", "show", "--csv"], fresh_clone).stdout)))
    assert len(header) <= MAX_COLUMNS, f"{len(header)} columns: {header}"
    assert "overall.cmc@1" in header
    params = yaml.safe_load((fresh_clone / "params.yaml").read_text())
    train_params = {f"train.{k}" for k in flatten(params["train"])}
    assert train_params and train_params <= set(header), sorted(train_params - set(header))
    assert not [c for c in header if c.startswith("by_category")]  # per category: a plot, not columns


@pytest.mark.slow  # fails after every edit of the code until the baseline is regenerated: not while developing
def test_the_committed_dvc_lock_is_this_commits(fresh_clone: Path):
    """dvc.lock records the hashes of the code, params and data each stage ran with: on a fresh clone
    only outputs (not in git) may be missing, no code, params or committed input may differ."""
    status = json.loads(run(["dvc", "status", "--json"], fresh_clone).stdout or "{}")
    lock = yaml.safe_load((fresh_clone / "dvc.lock").read_text())
    produced = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])}
    stale = {}
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):
                stale[stage] = entry  # e.g. "changed command"
                continue
            for path, how in (entry.get("changed deps") or {}).items():
                # Another stage's output (or a folder of them, or a file in one) is simply not there yet.
                if not any(path == o or path.startswith(o + "/") or o.startswith(path + "/") for o in produced):
                    stale[f"{stage}: {path}"] = how
    assert not stale, f"dvc.lock does not match this commit ({stale}): {FIX}"


@pytest.mark.slow
@pytest.mark.long  # the whole default pipeline (8 epochs on every digit), not the reduced one
def test_reproduce_head_proves_every_committed_metric(fresh_clone: Path):
    proc = run([sys.executable, "-m", "reprokit.cli", "reproduce", "HEAD"], fresh_clone, check=False, timeout=3600)
    table = proc.stdout
    recorded = [line for line in table.splitlines() if ".json:" in line or ".tsv:" in line]
    differs = [line for line in recorded if not line.rstrip().endswith("ok")]
    assert proc.returncode == 0 and not differs, (
        f"the committed results are not what this commit produces: {FIX}\n{table}\n{proc.stderr[-3000:]}"
    )
    # Every committed number was compared: the headline metrics and each category's.
    n_by_category = sum(1 for line in recorded if line.startswith("runs/validate/plots/by_category.tsv:"))
    categories = len((fresh_clone / "runs/validate/plots/by_category.tsv").read_text().splitlines()) - 1
    n_metrics = len(_committed(fresh_clone, "runs/validate/metrics.json")["overall"])
    assert n_by_category == categories * n_metrics and categories == 10
    assert f"reproduced: {len(recorded)}/{len(recorded)} metrics agree" in proc.stderr
    # Nothing of the clone is input data that differs: the generated dataset and the stage folders
    # under runs/ (outputs, absent or partly committed) are made again, not warned about.
    assert "input data differs" not in proc.stderr, proc.stderr
