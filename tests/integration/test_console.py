"""The console of a default `dvc repro`: DVC's lines, progress bars, one summary line per stage.

Lightning's informational lines and library deprecation warnings are hidden inside the stage
runner only; `--verbose` (or REPROKIT_DEBUG=1) brings them back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.projects import run, subprocess_env

pytestmark = pytest.mark.slow

# What a default train printed before: Lightning's device lines, its advertisements, its fit
# summary, and torch's LeafSpec deprecation raised inside Lightning's _pytree helper.
NOISE = (
    "GPU available",
    "TPU available",
    "litlogger",
    "litmodels",
    "💡",
    "_pytree",
    "LeafSpec",
    "`Trainer.fit` stopped",
)
STAGES = ("prepare", "train", "validate", "visualize", "report", "mirror")


def _lines(text: str) -> list[str]:
    # Progress bars redraw with carriage returns: a summary line may follow one on the same "line".
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def test_a_default_run_prints_one_summary_line_per_stage_and_no_noise(pipeline_copy: Path):
    proc = run(["dvc", "repro", "--force"], pipeline_copy)
    console = proc.stdout + proc.stderr
    found = [noise for noise in NOISE if noise in console]
    assert not found, found
    lines = _lines(console)
    for stage in STAGES:
        mine = [line for line in lines if line.startswith(f"{stage}: ")]
        assert len(mine) == 1, (stage, mine)
        assert " -> " in mine[0], mine[0]  # what it wrote -> where to look
    summary = {line.split(":", 1)[0]: line for line in lines if line.split(":", 1)[0] in STAGES}
    assert summary["train"].startswith("train: loss=") and "-> runs/train (model.ckpt, metrics.json" in summary["train"]
    assert "-> runs/validate (metrics.json, by_category.json, per_query.tsv)" in summary["validate"]
    # The mirror: which logger run, where it is, and the command that opens it.
    match = re.fullmatch(
        r"mirror: tensorboard run (\S+) -> (\S+) \(open it: tensorboard --logdir logs/tensorboard\)", summary["mirror"]
    )
    assert match, summary["mirror"]
    assert match[2] == f"logs/tensorboard/{match[1]}" and (pipeline_copy / match[2]).is_dir()
    # No warning of reprokit's own either ("<stage>: warning: ...", "reprokit mirror: warning: ...").
    assert not [line for line in lines if re.match(r"(\w+|reprokit mirror): warning", line)], lines
    # The progress bars are still there.
    assert "embedding:" in console and "Epoch" in console


def test_verbose_brings_lightnings_lines_back(pipeline_copy: Path):
    cmd = [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train"]
    verbose = run([*cmd, "--verbose"], pipeline_copy)
    assert "GPU available: False" in verbose.stderr and "LeafSpec" in verbose.stderr
    debug = run(cmd, pipeline_copy, env=subprocess_env({"REPROKIT_DEBUG": "1"}))
    assert "GPU available: False" in debug.stderr and debug.stderr.count("train: loss=") == 1
