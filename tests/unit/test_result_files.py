"""validate's result files: the headline metrics, the per-category file and table, and their readers.

`dvc exp show` lists every number of a metrics file as a column: the per-category numbers (a
column per category and metric) live in a file of their own, still reach every logger through
the mirror's reader, and are still proven by `reprokit reproduce` (through the committed table).
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from reprokit.core.layout import ValidateDir
from reprokit.evaluate.metrics import retrieval_metrics
from reprokit.evaluate.scoring import write_validation
from reprokit.mirror.runfolder import read_run_folder
from reprokit.provenance.reproduce import _result_paths, current_metrics, recorded_metrics

DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"


def _result():
    """A small retrieval problem with two categories, one of them named with a tab."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb = torch.randn(8, 4, generator=gen) + labels[:, None].float()
    cats = ["a", "a", "a", "a", "b\tc", "b\tc", "b\tc", "b\tc"]
    flags = torch.ones(8, dtype=torch.bool)
    res = retrieval_metrics(
        emb,
        labels,
        flags,
        flags,
        categories=cats,
        cmc_top_k=(1, 3),
        precision_top_k=(2,),
        map_top_k=(2,),
        progress=False,
    )
    val_df = pd.DataFrame({"path": [f"{i}.png" for i in range(8)], "label": labels.numpy()})
    return res, val_df


def test_headline_metrics_leave_the_categories_to_their_own_file_and_table(tmp_path):
    res, val_df = _result()
    headline = write_validation(tmp_path, res, val_df)
    full = res.to_json_dict()
    out = ValidateDir(tmp_path)
    metrics = json.loads(out.metrics.read_text())
    assert metrics == headline == {"overall": full["overall"], "n_queries": 8, "n_queries_without_gt": 0}
    assert json.loads(out.by_category.read_text()) == {"by_category": full["by_category"]}
    with open(out.by_category_table, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["category", *full["overall"]]  # metrics in validate's order
    assert [r[0] for r in rows[1:]] == ["a", "b\tc"]  # quoted, not split, by the tab
    for row in rows[1:]:
        assert [float(x) for x in row[1:]] == list(full["by_category"][row[0]].values())  # exact: repr round trip


def _identity(runs: Path) -> None:
    (runs / "train").mkdir(parents=True)
    (runs / "train" / "run.json").write_text(json.dumps({"run_id": "0" * 32, "run_name": "run-00000000"}))


def test_every_logger_still_receives_the_per_category_values(tmp_path):
    res, val_df = _result()
    runs = tmp_path / "runs"
    _identity(runs)
    write_validation(runs / "validate", res, val_df)
    scalars = {s.tag: s.value for s in read_run_folder(runs).scalars}
    for cat, values in res.to_json_dict()["by_category"].items():
        for name, value in values.items():
            assert scalars[f"validate/{cat}/{name}"] == value
    assert scalars["validate/cmc@1"] == res.overall["cmc@1"] and scalars["validate/n_queries"] == 8


def test_a_run_written_before_the_split_is_still_read(tmp_path):
    # Earlier runs kept "by_category" inside metrics.json: replaying one later loses nothing.
    runs = tmp_path / "runs"
    _identity(runs)
    old = {"overall": {"cmc@1": 0.5}, "by_category": {"7": {"cmc@1": 0.25}}, "n_queries": 4, "n_queries_without_gt": 1}
    (runs / "validate").mkdir()
    (runs / "validate" / "metrics.json").write_text(json.dumps(old))
    scalars = {s.tag: s.value for s in read_run_folder(runs).scalars}
    assert scalars["validate/7/cmc@1"] == 0.25 and scalars["validate/n_queries_without_gt"] == 1


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t.invalid",
            "PATH": "/usr/bin:/bin",
        },
    )


def test_reproduce_proves_the_committed_per_category_numbers(tmp_path):
    import yaml

    assert "runs/validate/plots/by_category.tsv" in _result_paths(yaml.safe_load(DVC_YAML.read_text()))
    res, val_df = _result()
    repo = tmp_path / "repo"
    write_validation(repo / "runs" / "validate", res, val_df)
    (repo / "dvc.yaml").write_text(DVC_YAML.read_text())
    _git(repo, "init", "-q")
    _git(repo, "add", "dvc.yaml", "runs/validate/metrics.json", "runs/validate/plots/by_category.tsv")
    _git(repo, "commit", "-qm", "results")
    recorded = recorded_metrics("HEAD", repo)
    table = "runs/validate/plots/by_category.tsv"
    assert recorded[f"{table}:a.cmc@1"] == res.by_category["a"]["cmc@1"]
    assert recorded[f"{table}:b\tc.map@2"] == res.by_category["b\tc"]["map@2"]
    assert recorded["runs/validate/metrics.json:overall.cmc@3"] == res.overall["cmc@3"]
    # Every committed per-category number is a row of the comparison, read back identically.
    n_table = sum(k.startswith(table) for k in recorded)
    assert n_table == len(res.by_category) * len(res.metric_names)
    assert current_metrics(repo) == recorded


def test_a_revision_without_results_says_what_to_commit(tmp_path):
    from reprokit.core.errors import ReproduceError

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(DVC_YAML.read_text())
    _git(repo, "init", "-q")
    _git(repo, "add", "dvc.yaml")
    _git(repo, "commit", "-qm", "pipeline only")
    with pytest.raises(ReproduceError) as err:
        recorded_metrics("HEAD", repo)
    line = err.value.one_line()
    assert (
        "git add dvc.lock runs/train/metrics.json runs/validate/metrics.json runs/validate/plots/by_category.tsv"
        in line
    )
