"""The sweep's own cost per trial against a plain `dvc exp run` with the same params, and trials per hour.

    python benchmarks/bench_sweep.py [--trials 3] [--n-source 120] [--epochs 1]

In a fresh copy of the project (small settings, `dvc repro` once, committed):

1. plain: `dvc exp run --temp -n plain-<i> -S ...` run one after another, with exactly the values a
   sweep trial sets (tuning split, logger.sweep, ...) but for `train.lr`, whose value changes no cost
   and keeps DVC's run-cache from restoring one arm from the other;
2. `reprokit sweep` of a grid over `train.lr` with `--jobs 1`, the same number of trials;
3. the same grid with `--jobs 2` (a new study), for trials per hour with two at a time.

Overhead per trial = sweep wall time / trials - mean plain wall time; the controller's own time
is the sweep's wall time minus the time its trials' `dvc exp run` took. All in one run, one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.projects import commit_all, make_project_copy, run, subprocess_env  # noqa: E402


def grid(name: str, lrs: list[float]) -> str:
    return (f"objective: {{metric: map@r}}\nsampler: grid\nseed: 0\nspace:\n  train.lr: {{choice: {lrs}}}\n"
            "tune_fraction: 0.2\n")


def sweep(repo: Path, name: str, jobs: int) -> tuple[float, list]:
    import optuna

    from reprokit.core.study_storage import open_storage

    started = time.perf_counter()
    run(["reprokit", "sweep", f"sweeps/{name}.yaml", "--jobs", str(jobs)], repo, timeout=7200)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=open_storage(str(repo / ".reprokit/sweeps" / f"{name}.journal")))
    assert all(t.state.name == "COMPLETE" for t in study.trials), [(t.number, t.user_attrs.get("reason")) for t in study.trials]
    return wall, study.trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--n-source", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    load_before = os.getloadavg()
    small = {"data": {"digits": {"n_source": args.n_source}}, "train": {"epochs": args.epochs, "n_labels": 16},
             "visualize": {"n_queries": 2}}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        repo = make_project_copy(Path(tmp) / "repo", small).resolve()
        run(["dvc", "repro"], repo, timeout=3600)
        commit_all(repo, "baseline run")
        (repo / "sweeps").mkdir()
        n = args.trials
        (repo / "sweeps" / "one.yaml").write_text(grid("one", [round(0.001 + 0.0001 * i, 6) for i in range(n)]))
        (repo / "sweeps" / "two.yaml").write_text(grid("two", [round(0.003 + 0.0001 * i, 6) for i in range(2 * n)]))

        # The plain arm first, with a sweep trial's exact overrides (but train.lr): from a dry study.
        from reprokit.tune.sweep_file import load_sweep, trial_overrides
        from reprokit.tune.trials import exp_command

        spec = load_sweep(repo / "sweeps" / "one.yaml", repo / "params.yaml")
        plain = []
        for i in range(n):
            overrides = trial_overrides(spec, {"train.lr": round(0.002 + 0.0001 * i, 6)}, trial=100 + i)
            started = time.perf_counter()
            subprocess.run(exp_command(f"plain-{i}", overrides), cwd=repo, env=subprocess_env(), check=True,
                           capture_output=True)
            plain.append(time.perf_counter() - started)

        wall1, trials1 = sweep(repo, "one", jobs=1)
        dvc_time = sum(t.user_attrs["elapsed_s"] for t in trials1)
        wall2, trials2 = sweep(repo, "two", jobs=2)
    load_after = os.getloadavg()

    per_trial = wall1 / n
    mean_plain = statistics.mean(plain)
    print(f"{n} trials, {args.n_source} source digits, {args.epochs} epoch(s); load average {load_before[0]:.1f} -> "
          f"{load_after[0]:.1f}")
    print(f"plain dvc exp run        : {mean_plain:7.1f} s per experiment (each: {', '.join(f'{p:.1f}' for p in plain)})")
    print(f"reprokit sweep --jobs 1  : {per_trial:7.1f} s per trial (wall {wall1:.1f} s for {n})")
    print(f"overhead per trial       : {per_trial - mean_plain:+7.1f} s, ratio {per_trial / mean_plain:.3f} (aim <= 1.05)")
    print(f"controller's own time    : {(wall1 - dvc_time) / n:7.2f} s per trial (wall minus its trials' dvc exp run)")
    print(f"trials per hour --jobs 1 : {3600 * n / wall1:7.1f}")
    print(f"trials per hour --jobs 2 : {3600 * len(trials2) / wall2:7.1f} ({len(trials2)} trials in {wall2:.1f} s)")
    print(json.dumps({"plain_s": plain, "sweep_wall_s": wall1, "sweep2_wall_s": wall2, "trials2": len(trials2)}))


if __name__ == "__main__":
    main()
