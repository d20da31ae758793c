"""A params.yaml the schema rejects, in a real `dvc repro`: the first stage that reads the bad value
stops at load time with one line naming the key, and nothing recorded changes.

"Nothing recorded changes": dvc.lock is byte-identical, and every file under runs/ is either
unchanged or gone (DVC deletes a stage's outputs before running it, see NOTES.md), never
half-written or holding numbers of another configuration; no new file appears.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.projects import run, write_params

pytestmark = pytest.mark.slow


def _recorded(repo: Path) -> dict[str, str]:
    files = [repo / "dvc.lock", *(p for p in (repo / "runs").rglob("*") if p.is_file())]
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize(
    ("override", "stage", "key"),
    [
        ({"train": {"n_labels": 1}}, "train", "train.n_labels"),  # the first stage to re-run: train
        # train scores with validate's k lists while training: it reads them first
        ({"validate": {"cmc_top_k": []}}, "train", "validate.cmc_top_k"),
        ({"validate": {"memory_budget_mb": 0}}, "validate", "validate.memory_budget_mb"),  # train is up to date
        ({"visualize": {"metric": "map@10"}}, "visualize", "visualize.metric"),  # was a bare KeyError
        # A library name is resolved when train builds the block, before any batch is read.
        ({"train": {"optimizer": {"name": "Adamw"}}}, "train", "train.optimizer.name"),
        (
            {"train": {"miner": {"name": "pml:MultiSimilarityMiner"}}},
            "train",
            "train.miner",
        ),  # with the built-in triplet
    ],
)
def test_a_rejected_value_stops_the_first_stage_in_one_line_and_changes_nothing(pipeline_copy, override, stage, key):
    before = _recorded(pipeline_copy)
    write_params(pipeline_copy, override)

    proc = run(["dvc", "repro"], pipeline_copy, check=False)

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if re.match(r"[a-z]+: error: ", line)]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"{stage}: error: {key} must be "), errors[0]
    assert "; got " in errors[0]

    after = _recorded(pipeline_copy)
    assert after["dvc.lock"] == before["dvc.lock"]
    assert set(after) <= set(before), f"new files: {sorted(set(after) - set(before))}"
    changed = [path for path, digest in after.items() if before[path] != digest]
    assert not changed, f"changed: {changed}"
