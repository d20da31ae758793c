"""What Grad-CAM costs the visualize stage: the whole stage against the worst-queries figure alone.

Runs the default pipeline up to validate once in a fresh copy of the project, then times, as fresh
processes interleaved (``--repeats`` each, medians): ``python -m stages.visualize`` (both figures,
as dvc.yaml runs it) and the same stage without Grad-CAM (dataset, per-query table and the
worst-queries figure only: what the stage did before Grad-CAM). Prints both and their ratio.

    python benchmarks/bench_visualize.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.projects import make_project_copy, run, subprocess_env  # noqa: E402

STAGE = [
    "-m",
    "stages.visualize",
    "--params",
    "params.yaml",
    "--per-query",
    "runs/validate/per_query.tsv",
    "--model",
    "runs/train/model.ckpt",
    "--out",
]
WORST_ONLY = """
import sys
from pathlib import Path
from reprokit.core.config import load_config
from reprokit.data.source import load_dataset, split_rows
from reprokit.visualize.worst_queries import draw_worst_queries, read_per_query
cfg = load_config("params.yaml")
df, paths, _ = load_dataset(cfg, check_images=False)
val_df, val_paths = split_rows(df, paths, "validation")
draw_worst_queries(read_per_query(Path("runs/validate/per_query.tsv")), val_df, val_paths, cfg.visualize,
                   Path(sys.argv[1]) / "worst_queries.png")
"""


def timed(cmd: list[str], repo: Path) -> float:
    start = time.monotonic()
    subprocess.run(cmd, cwd=repo, check=True, capture_output=True, env=subprocess_env())
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-") as tmp:
        repo = make_project_copy(Path(tmp) / "repo")
        run(["dvc", "repro", "validate"], repo)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average at start {os.getloadavg()[0]:.1f}"
        )
        full, worst = [], []
        for i in range(args.repeats):
            full.append(timed([sys.executable, *STAGE, f"{tmp}/full"], repo))
            worst.append(timed([sys.executable, "-c", WORST_ONLY, f"{tmp}/worst"], repo))
            print(f"  repeat {i + 1}: stage {full[-1]:.2f} s, worst-queries only {worst[-1]:.2f} s", flush=True)
        f, w = statistics.median(full), statistics.median(worst)
        print(
            f"visualize stage (worst queries + Grad-CAM): {f:.2f} s; worst queries only: {w:.2f} s "
            f"(medians of {args.repeats}, fresh processes)"
        )
        print(f"Grad-CAM adds {f - w:.2f} s: ratio {f / w:.2f}; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
