"""The sweep's own cost per trial against a plain `dvc exp run` with the same params, and trials per hour.

    python benchmarks/bench_sweep.py [--trials 3] [--n-source 120] [--epochs 1]

In a fresh copy of the project (small settings, `dvc repro` once, committed), pairs, interleaved:

1. plain: `dvc exp run --temp -n plain-<i> -S ...` with exactly the values a sweep trial sets
   (tuning split, logger.sweep, ...) but for `train.lr`, whose value changes no cost and keeps DVC's
   run-cache from restoring one arm from the other;
2. beside it (before it in every other pair), `reprokit sweep one.yaml --trials <i+1>`: one more trial of
   a grid over `train.lr`, the whole command timed (so each trial also pays the controller's start: an
   upper bound);

then the same kind of grid with `--jobs 2` (a new study), for trials per hour two at a time.
The controller's own time is a sweep command's wall time minus its trial's `dvc exp run`.
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
    return (
        f"objective: {{metric: map@r}}\nsampler: grid\nseed: 0\nspace:\n  train.lr: {{choice: {lrs}}}\n"
        "tune_fraction: 0.2\n"
    )


def sweep(repo: Path, name: str, jobs: int, more: list[str] = ()) -> tuple[float, list]:
    import optuna

    from reprokit.core.study_storage import open_storage

    started = time.perf_counter()
    run(["reprokit", "sweep", f"sweeps/{name}.yaml", "--jobs", str(jobs), *more], repo, timeout=7200)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=open_storage(str(repo / ".reprokit/sweeps" / f"{name}.journal")))
    assert all(t.state.name == "COMPLETE" for t in study.trials), [
        (t.number, t.user_attrs.get("reason")) for t in study.trials
    ]
    return wall, study.trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--n-source", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    load_before = os.getloadavg()
    small = {
        "data": {"digits": {"n_source": args.n_source}},
        "train": {"epochs": args.epochs, "n_labels": 16},
        "visualize": {"n_queries": 2},
    }
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
        plain, swept, own = [], [], []
        for i in range(n):
            overrides = trial_overrides(spec, {"train.lr": round(0.002 + 0.0001 * i, 6)}, trial=100 + i)
            for arm in ("plain", "sweep") if i % 2 == 0 else ("sweep", "plain"):  # each arm first in half the pairs
                if arm == "plain":
                    started = time.perf_counter()
                    subprocess.run(
                        exp_command(f"plain-{i}", overrides),
                        cwd=repo,
                        env=subprocess_env(),
                        check=True,
                        capture_output=True,
                    )
                    plain.append(time.perf_counter() - started)
                else:
                    wall, trials = sweep(repo, "one", jobs=1, more=["--trials", str(i + 1)])
                    swept.append(wall)
                    own.append(wall - max(trials, key=lambda t: t.number).user_attrs["elapsed_s"])

        wall2, trials2 = sweep(repo, "two", jobs=2)
    load_after = os.getloadavg()

    ratios = [s / p for s, p in zip(swept, plain)]
    print(
        f"{n} pairs, {args.n_source} source digits, {args.epochs} epoch(s); load average {load_before[0]:.1f} -> "
        f"{load_after[0]:.1f}"
    )
    print(f"plain dvc exp run         : {statistics.mean(plain):6.1f} s mean ({', '.join(f'{p:.1f}' for p in plain)})")
    print(f"reprokit sweep, one trial : {statistics.mean(swept):6.1f} s mean ({', '.join(f'{p:.1f}' for p in swept)})")
    print(
        f"ratio sweep / plain       : {sum(swept) / sum(plain):.3f} of sums, {statistics.median(ratios):.3f} median of "
        f"pairs (aim <= 1.05)"
    )
    print(
        f"controller's own time     : {statistics.mean(own):6.2f} s per command ({', '.join(f'{o:.2f}' for o in own)}): "
        f"{statistics.mean(own) / statistics.mean(plain):.1%} of a plain run"
    )
    print(f"trials per hour --jobs 1  : {3600 / statistics.mean(swept):6.1f}")
    print(f"trials per hour --jobs 2  : {3600 * len(trials2) / wall2:6.1f} ({len(trials2)} trials in {wall2:.1f} s)")
    print(
        json.dumps(
            {"plain_s": plain, "sweep_s": swept, "own_s": own, "jobs2_wall_s": wall2, "jobs2_trials": len(trials2)}
        )
    )


if __name__ == "__main__":
    main()
