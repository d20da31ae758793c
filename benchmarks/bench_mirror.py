"""Time mirroring a typical run folder into TensorBoard and CSV.

Run from the repo root:  .venv/bin/python benchmarks/bench_mirror.py [--repeat 3]

The run folder: 6 epochs x 40 steps of the four loss statistics plus a user column, epoch
curves, validation metrics for 2 categories, a 1500x1000 worst-queries figure (48 thumbnails on
white, like the real one), a 2 MB code
snapshot and the usual artifacts. Prints, per backend, the median of ``--repeat`` in-process
``mirror_run`` calls and the wall time of one fresh process doing the same (what the DVC
``mirror`` stage costs, imports included). Relate these to the train stage's wall time: the
issue's budget is <= 10 % of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprokit.core.config import LoggerConfig  # noqa: E402
from reprokit.mirror import mirror_run  # noqa: E402
from tests.integration.mirror_data import build_run_folder  # noqa: E402


def typical_run(project: Path) -> Path:
    runs, _ = build_run_folder(project, epochs=6, steps_per_epoch=40)
    rng = np.random.default_rng(0)
    # Like the real figure: a white page with a grid of 6 x 8 noisy 32 px thumbnails scaled up.
    # (Pure noise over the whole page would be an incompressible 4.5 MB PNG; TensorBoard's event
    # writer checksums in pure Python at ~0.2 s/MB when TensorFlow is absent.)
    fig = np.full((1000, 1500, 3), 255, dtype=np.uint8)
    for r in range(6):
        for c in range(8):
            thumb = np.kron(rng.integers(0, 256, size=(32, 32, 1), dtype=np.uint8), np.ones((4, 4, 3), dtype=np.uint8))
            fig[20 + r * 160 : 20 + r * 160 + 128, 20 + c * 180 : 20 + c * 180 + 128] = thumb
    Image.fromarray(fig).save(runs / "visualize" / "worst_queries.png")
    (runs / "train" / "artifacts" / "code.tar.gz").write_bytes(rng.bytes(2_000_000))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        project = Path(tmp)
        runs = typical_run(project)
        print(f"figure {(runs / 'visualize' / 'worst_queries.png').stat().st_size / 1e6:.2f} MB, code snapshot 2.00 MB")
        for name in ("tensorboard", "csv"):
            times, report = [], None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                report = mirror_run(logger=LoggerConfig(name=name), project_dir=project)
                times.append(time.perf_counter() - t0)
                assert report["ok"], report["error"]
            code = (
                "from reprokit.core.config import LoggerConfig; from reprokit.mirror import mirror_run; "
                f"assert mirror_run(logger=LoggerConfig(name={name!r}), project_dir={str(project)!r})['ok']"
            )
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
            )
            fresh = time.perf_counter() - t0
            c = report["counts"]
            print(
                f"{name:12s} in-process median {statistics.median(times):.3f} s (n={args.repeat}), "
                f"fresh process {fresh:.2f} s  [{c['scalars']} scalars, {c['images']} images, "
                f"{c['texts']} texts, {c['artifacts']} artifacts]"
            )


if __name__ == "__main__":
    main()
