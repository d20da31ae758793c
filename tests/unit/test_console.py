"""Hiding third-party chatter is scoped: nothing changes at import, everything is restored after."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

from reprokit.core.console import QUIET_LOGGERS, quiet_third_party, shown_path, summary

LEAF = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()`"


def test_importing_reprokit_changes_no_warnings_filter_and_no_logger():
    code = (
        "import logging, warnings\n"
        "import lightning.pytorch\n"
        "before = (list(warnings.filters), [logging.getLogger(n).level for n in ('lightning.pytorch', 'lightning.fabric')])\n"
        "import reprokit.core.stage_runner, reprokit.pipeline.train, reprokit.pipeline.validate, reprokit.cli\n"
        "after = (list(warnings.filters), [logging.getLogger(n).level for n in ('lightning.pytorch', 'lightning.fabric')])\n"
        "assert before == after, (before, after)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_inside_the_noise_is_hidden_and_afterwards_everything_is_as_before():
    lightning = logging.getLogger("lightning.pytorch")
    saved = lightning.level
    lightning.setLevel(logging.INFO)  # what Lightning's import does
    try:
        levels = [logging.getLogger(n).level for n in QUIET_LOGGERS]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filters = list(warnings.filters)
            with quiet_third_party():
                warnings.warn(LEAF, FutureWarning, stacklevel=2)  # hidden
                warnings.warn("a user's own deprecation", FutureWarning, stacklevel=2)  # not ours to hide
                assert not logging.getLogger("lightning.pytorch.utilities.rank_zero").isEnabledFor(logging.INFO)
                assert logging.getLogger("lightning.pytorch").isEnabledFor(logging.WARNING)
            assert list(warnings.filters) == filters
            warnings.warn(LEAF, FutureWarning, stacklevel=2)  # shown again
        assert [str(w.message) for w in caught] == ["a user's own deprecation", LEAF]
        assert [logging.getLogger(n).level for n in QUIET_LOGGERS] == levels
        assert logging.getLogger("lightning.pytorch.utilities.rank_zero").isEnabledFor(logging.INFO)
    finally:
        lightning.setLevel(saved)


def test_disabled_it_hides_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_third_party(enabled=False):
            warnings.warn(LEAF, FutureWarning, stacklevel=2)
    assert len(caught) == 1


def test_a_summary_line_names_what_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    line = summary("visualize", "6 worst queries by map@5", tmp_path / "runs" / "x.png", "open it: something")
    assert line == "visualize: 6 worst queries by map@5 -> runs/x.png (open it: something)"
    assert capsys.readouterr().err == line + "\n"
    assert shown_path("/elsewhere/file") == "/elsewhere/file"  # outside the working directory: as it is
