"""Validation while training: what validating every epoch costs the default pipeline's training.

In a fresh copy of the project (default params.yaml, the embedded digits generated once), one
training runs the way the train stage runs it (``reprokit.train.loop.train`` with the stage's
validator, validating after every epoch) and times, epoch by epoch, the training (epoch start to
epoch end) and everything validating adds at the epoch's end (the validation callback's whole
work: embedding, scoring, recording). Measured within one run, epoch by epoch, so load from other
processes weighs on both alike. Prints each epoch, the total cost as a fraction of the training
time, and the load average.

``--compare`` also runs the whole train stage twice more, as ``python -m stages.train``, with
``train.validate_every_n_epochs`` 0 and 1, and prints the difference of their training times
(``runs/train/run.json``): the same cost seen from outside, noisier under load.

    python benchmarks/bench_validation.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl  # noqa: E402

from tests.projects import make_project_copy, run, subprocess_env, write_params  # noqa: E402


class _Marks(pl.Callback):
    """Put first and last among the callbacks: the validation callback runs between the two epoch-end marks."""

    def __init__(self, log: dict[str, list[float]], key: str) -> None:
        self.marks, self.key = log, key

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.key == "before":
            self.marks["start"].append(time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.marks[self.key].append(time.perf_counter())


def one_run(repo: Path) -> dict[str, list[float]]:
    os.chdir(repo)
    sys.path.insert(0, str(repo))  # models.py, as the stage finds it
    from reprokit.core.config import load_config
    from reprokit.data.source import load_dataset
    from reprokit.evaluate.scoring_in_training import TrainingValidator
    from reprokit.train import loop

    cfg = load_config("params.yaml")
    df, paths, _ = load_dataset(cfg)
    log: dict[str, list[float]] = {"start": [], "before": [], "after": []}
    make_trainer = loop.make_trainer
    loop.make_trainer = lambda t, tr, lg, cbs: make_trainer(
        t, tr, lg, [_Marks(log, "before"), *cbs, _Marks(log, "after")]
    )
    try:
        loop.train(cfg, df, paths, repo / "runs" / "bench", validator=TrainingValidator(cfg, df, paths))
    finally:
        loop.make_trainer = make_trainer
    return {
        "train": [b - s for s, b in zip(log["start"], log["before"])],
        "validate": [a - b for b, a in zip(log["before"], log["after"])],
    }


def stage_seconds(repo: Path, every: int) -> float:
    write_params(repo, {"train": {"validate_every_n_epochs": every}})
    proc = subprocess.run(
        [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train"],
        cwd=repo,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"train failed:\n{proc.stderr[-2000:]}")
    ident = json.loads((repo / "runs/train/run.json").read_text())
    return ident["finished_at"] - ident["started_at"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="store_true", help="also time the train stage with and without validation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-") as tmp:
        repo = make_project_copy(Path(tmp) / "repo")
        run([sys.executable, "-m", "stages.prepare", "--params", "params.yaml", "--dataset", "digits"], repo)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average at start {os.getloadavg()[0]:.1f}"
        )
        times = one_run(repo)
        print("epoch  train s  validate s  validate/train")
        for i, (t, v) in enumerate(zip(times["train"], times["validate"])):
            print(f"{i:5d}  {t:7.2f}  {v:10.2f}  {v / t:14.1%}")
        total_t, total_v = sum(times["train"]), sum(times["validate"])
        print(
            f"total  {total_t:7.2f}  {total_v:10.2f}  {total_v / total_t:14.1%}   "
            "(the first validation also decodes the images; budget <= 15%)"
        )
        if args.compare:
            never, every = stage_seconds(repo, 0), stage_seconds(repo, 1)
            print(f"train stage: never {never:.1f} s, every epoch {every:.1f} s: {every / never - 1:+.1%}")
        print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
