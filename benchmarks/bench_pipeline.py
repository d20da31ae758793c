"""Whole default pipeline: wall time of `dvc repro --force`, per stage, the quality it reaches and
the size of the report page.

Runs in a fresh copy of the project (its own git + DVC repo, default params.yaml), so the
figures are those a new user gets. Prints one table; `--repeat N` runs it N times.

    python benchmarks/bench_pipeline.py
    python benchmarks/bench_pipeline.py --keep /tmp/default-run   # keeps the copy: open its runs/report/index.html
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

from tests.projects import make_project_copy, subprocess_env  # noqa: E402


def timed_repro(repo: Path) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    stage_start, stage, stages = start, None, {}
    proc = subprocess.Popen(
        ["dvc", "repro", "--force"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )
    for line in proc.stdout or ():
        if line.startswith("Running stage"):
            now = time.monotonic()
            if stage:
                stages[stage] = now - stage_start
            stage, stage_start = line.split("'")[1], now
    if proc.wait() != 0:
        raise SystemExit("dvc repro failed")
    end = time.monotonic()
    if stage:
        stages[stage] = end - stage_start
    return end - start, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this new folder and keep it (e.g. to open its report)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-") as tmp:
        repo = make_project_copy(args.keep.resolve() if args.keep else Path(tmp) / "repo")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        for i in range(args.repeat):
            total, stages = timed_repro(repo)
            val = json.loads((repo / "runs/validate/metrics.json").read_text())["overall"]
            raw = json.loads((repo / "runs/validate/baseline.json").read_text())["raw_pixels"]
            print(f"run {i + 1}: dvc repro --force = {total:.1f} s wall (budget 90 s)")
            for name, secs in stages.items():
                print(f"  {name:<10} {secs:6.1f} s")
            page = repo / "runs/report/index.html"
            if page.is_file():
                print(f"  report page: {page.stat().st_size / 2**20:.2f} MB (runs/report/index.html)")
            if "mirror" in stages and "train" in stages:
                print(f"  mirror / train = {stages['mirror'] / stages['train']:.1%} (budget 10%)")
            print(
                f"  validation CMC@1: trained {val['cmc@1']:.3f}, raw pixels {raw['cmc@1']:.3f} "
                f"(difference {val['cmc@1'] - raw['cmc@1']:.3f}); MAP@5 {val['map@5']:.3f} vs {raw['map@5']:.3f}"
            )


if __name__ == "__main__":
    main()
