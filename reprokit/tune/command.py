"""The ``reprokit sweep`` command: run, ``--show`` or ``--promote`` one sweep file."""

from __future__ import annotations

from pathlib import Path

from reprokit.core.study_storage import open_storage, public_url
from reprokit.tune.controller import SweepOptions, repo_root, run_sweep, study_location
from reprokit.tune.study import open_study
from reprokit.tune.sweep_file import load_sweep

__all__ = ["sweep_command"]


def sweep_command(file: Path, jobs: int = 1, storage: str | None = None, trials: int | None = None,
                  show: bool = False, promote: bool = False) -> int:
    if not (show or promote):
        return run_sweep(SweepOptions(file, jobs=jobs, storage=storage, trials=trials))
    repo = repo_root(Path.cwd())
    sweep = load_sweep(file, repo / "params.yaml")
    text = study_location(repo, sweep.name, storage)
    study = open_study(sweep, open_storage(text))
    if promote:
        from reprokit.tune.promote import promote as run_promote

        record = run_promote(repo, sweep, study)
        print(f"promoted trial {record['trial']}: experiment and branch {record['branch']}")
    from reprokit.tune.show import render

    print(render(sweep, study, public_url(text)))
    return 0
