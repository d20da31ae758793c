"""Lightning DDP on 2 CPU processes (gloo): same metrics as one process, rank zero alone writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.projects import run, subprocess_env, write_params

pytestmark = pytest.mark.slow

DDP = {"trainer": {"strategy": "ddp", "devices": 2}}


def _stage(repo: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", module, "--params", "params.yaml", *args], repo, env=subprocess_env())


def test_validate_under_ddp_gives_the_single_process_metrics(pipeline_copy: Path, pipeline_repo: Path):
    """Each rank searches its share of the queries (every rank metric too); rank zero writes."""
    every_rank_metric = ["map@r", "r_precision", "mrr", "ap"]
    # Several batches per rank; the settings stay for the single-process run below.
    write_params(pipeline_copy, {"validate": {"batch_size": 64, "extra_metrics": every_rank_metric}, **DDP})
    proc = _stage(pipeline_copy, "stages.validate", "--out", "runs/validate")
    assert proc.stderr.count("validate: cmc@1=") == 1  # scored once, by rank zero
    ddp = json.loads((pipeline_copy / "runs/validate/metrics.json").read_text())

    write_params(pipeline_copy, {"trainer": {"strategy": "auto", "devices": 1}})
    _stage(pipeline_copy, "stages.validate", "--out", "runs/validate_single")
    single = json.loads((pipeline_copy / "runs/validate_single/metrics.json").read_text())
    assert ddp == single
    assert set(every_rank_metric) <= set(ddp["overall"])
    for name in ("per_query.tsv", "by_category.json"):
        assert (pipeline_copy / "runs/validate" / name).read_bytes() == (
            pipeline_copy / "runs/validate_single" / name
        ).read_bytes(), name

    # The logger holds each metric once.
    _stage(pipeline_copy, "stages.mirror", "--runs", "runs")
    report = json.loads((pipeline_copy / "runs/mirror/report.json").read_text())
    acc = EventAccumulator(report["where"]["log_dir"], size_guidance={"scalars": 0})
    acc.Reload()
    val_tags = [t for t in acc.Tags()["scalars"] if t.startswith("validate")]
    assert val_tags
    assert all(len(acc.Scalars(t)) == 1 for t in val_tags)


def test_one_epoch_of_ddp_training_completes_and_rank_zero_alone_writes(pipeline_copy: Path):
    write_params(pipeline_copy, {"train": {"epochs": 1}, **DDP})
    proc = _stage(pipeline_copy, "stages.train", "--out", "runs/train_ddp")
    assert proc.stderr.count("train: loss=") == 1
    out = pipeline_copy / "runs/train_ddp"
    assert (out / "model.ckpt").is_file() and (out / "metrics.json").is_file()
    steps = (out / "plots/step.tsv").read_text().splitlines()[1:]
    single_steps = (pipeline_copy / "runs/train/plots/step.tsv").read_text().splitlines()[1:]
    # Two ranks share the epoch's batches: half the steps of one process per epoch.
    per_epoch_single = sum(1 for line in single_steps if line.split("\t")[1] == "0")
    assert len(steps) == per_epoch_single // 2
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert not leftovers  # no temp files from a second writer


def test_ddp_training_validates_every_epoch_deterministically(pipeline_copy: Path):
    """Validation while training under DDP (each rank embeds its share of the batches, every rank scores
    the gathered embeddings): the same bytes twice, and the last epoch's values are validate's own."""
    write_params(pipeline_copy, {"train": {"epochs": 2, "checkpoint": "best"}, **DDP})
    outs = []
    for name in ("runs/train_ddp_a", "runs/train_ddp_b"):
        proc = _stage(pipeline_copy, "stages.train", "--out", name)
        assert proc.stderr.count("train: loss=") == 1  # rank zero alone reports and writes
        outs.append(pipeline_copy / name)
    for rel in ("plots/epoch.tsv", "plots/step.tsv", "plots/validation.tsv", "metrics.json"):
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    header, *rows = (outs[0] / "plots/validation.tsv").read_text().splitlines()
    names = header.split("\t")
    best = json.loads((outs[0] / "metrics.json").read_text())["best"]
    row = dict(zip(names, rows[best["epoch"]].split("\t")))
    write_params(pipeline_copy, {"trainer": {"strategy": "auto", "devices": 1}})
    _stage(pipeline_copy, "stages.validate", "--model", str(outs[0] / "model.ckpt"), "--out", "runs/validate_ddp")
    overall = json.loads((pipeline_copy / "runs/validate_ddp/metrics.json").read_text())["overall"]
    assert overall == {m: float(row[f"val/{m}"]) for m in overall}
