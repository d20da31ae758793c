"""Validation while training: what validating every epoch costs the default pipeline's train stage.

In a fresh copy of the project (default params.yaml, the embedded digits generated once), the train
stage runs with ``train.validate_every_n_epochs`` 0 (never), 1 (every epoch, the default) and 2,
interleaved, ``--repeat`` times. Training time is the stage's own record (``runs/train/run.json``:
``finished_at - started_at``, from the config read to the model written; the interpreter's start
and imports are left out, they do not depend on validation). Prints the medians and the cost of
each setting as a fraction of the training time without validation, and the load average.

    python benchmarks/bench_validation.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.projects import make_project_copy, run, subprocess_env, write_params  # noqa: E402

SETTINGS = (0, 1, 2)


def train_seconds(repo: Path, every: int) -> float:
    write_params(repo, {"train": {"validate_every_n_epochs": every}})
    proc = subprocess.run(
        [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train"],
        cwd=repo, env=subprocess_env(), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"train failed:\n{proc.stderr[-2000:]}")
    ident = json.loads((repo / "runs/train/run.json").read_text())
    return ident["finished_at"] - ident["started_at"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-") as tmp:
        repo = make_project_copy(Path(tmp) / "repo")
        run([sys.executable, "-m", "stages.prepare", "--params", "params.yaml", "--dataset", "digits"], repo)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average at start {os.getloadavg()[0]:.1f}")
        times: dict[int, list[float]] = {n: [] for n in SETTINGS}
        for i in range(args.repeat):
            for n in SETTINGS:  # interleaved: load drifts hit every setting alike
                times[n].append(train_seconds(repo, n))
                print(f"  repeat {i + 1}, validate_every_n_epochs={n}: {times[n][-1]:.1f} s", flush=True)
        base = statistics.median(times[0])
        print(f"train stage, default params (8 epochs), medians of {args.repeat}:")
        for n in SETTINGS:
            med = statistics.median(times[n])
            paired = statistics.median((t - b) / b for t, b in zip(times[n], times[0]))
            label = "never" if n == 0 else f"every {n} epoch(s)"
            print(f"  validate {label:<16} {med:6.1f} s   cost {med / base - 1:+6.1%} of medians, {paired:+6.1%} median of paired")
        print(f"load average at end {os.getloadavg()[0]:.1f}; budget: every epoch <= +15%")


if __name__ == "__main__":
    main()
