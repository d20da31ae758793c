"""The ``reprokit sweep`` command: run, ``--show`` or ``--promote`` one sweep file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reprokit.core.layout import PARAMS_FILE
from reprokit.core.study_storage import open_storage, public_url
from reprokit.tune.controller import SweepOptions, repo_root, run_sweep, study_location
from reprokit.tune.study import open_study
from reprokit.tune.sweep_file import load_sweep

__all__ = ["sweep_command"]


def sweep_command(
    file: Path,
    jobs: int = 1,
    storage: str | None = None,
    trials: int | None = None,
    show: bool = False,
    promote: bool = False,
    html: Path | None = None,
    write_page: Callable[[Path, dict], Path] | None = None,
) -> int:
    """``html``: also write the sweep's page there with ``write_page`` (the CLI passes
    ``reprokit.visualize.sweep_page.write_sweep_page``: this layer does not import the one that draws)."""
    show = show or html is not None
    if not (show or promote):
        return run_sweep(SweepOptions(file, jobs=jobs, storage=storage, trials=trials))
    repo = repo_root(Path.cwd())
    sweep = load_sweep(file, repo / PARAMS_FILE)
    text = study_location(repo, sweep.name, storage)
    study = open_study(sweep, open_storage(text))
    if promote:
        from reprokit.tune.promote import promote as run_promote

        record = run_promote(repo, sweep, study)
        print(f"promoted trial {record['trial']}: experiment and branch {record['branch']}")
    from reprokit.tune.show import page_data, render

    shown = public_url(text)  # the storage without its password
    print(render(sweep, study, shown))
    if html is not None and write_page is not None:
        page = write_page(html, page_data(sweep, study, shown))
        print(f"sweep {sweep.name}: page -> {page} (open it: file://{page.resolve()})")
    return 0
