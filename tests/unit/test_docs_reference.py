"""The site's reference pages (docs/reference/) are what the code generates now: a default, a CLI flag or a
run-folder file changed without `python -m docs.generate` fails here, naming the command."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys

import pytest

from docs.generate import REGENERATE, pages, stale_pages
from docs.generate.params_page import stated_ranges
from docs.generate.source import field_comment
from tests.import_graph import ROOT


def test_the_committed_reference_pages_are_current():
    stale = stale_pages()
    assert not stale, f"docs/reference/{stale} not what the code generates now: run `{REGENERATE}`"


def _train_epochs_default(monkeypatch, value):
    from reprokit.core.config_sections import TrainConfig

    (epochs,) = [f for f in dataclasses.fields(TrainConfig) if f.name == "epochs"]
    monkeypatch.setattr(epochs, "default", value)


def _one_more_cli_flag(monkeypatch, name):
    import reprokit.cli

    real = reprokit.cli._parser

    def parser():
        p = real()
        commands = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices["reproduce"].add_argument(name, help="a flag the docs do not know yet")
        return p

    monkeypatch.setattr(reprokit.cli, "_parser", parser)


def _a_run_file_described_anew(monkeypatch, doc):
    from reprokit.core.layout import TrainDir

    monkeypatch.setattr(TrainDir.__dict__["model"], "__doc__", doc)


@pytest.mark.parametrize(
    ("change", "value", "page", "shown"),
    [
        (_train_epochs_default, 9, "params.md", "| `train.epochs` | int | `9` |"),
        (_one_more_cli_flag, "--dry-run", "cli.md", "| `--dry-run DRY_RUN` |  | a flag the docs do not know yet |"),
        (_a_run_file_described_anew, "The trained network.", "run-folder.md", "| The trained network. |"),
    ],
)
def test_a_change_in_the_code_makes_its_page_stale(monkeypatch, change, value, page, shown):
    assert stale_pages() == []
    change(monkeypatch, value)
    generated = pages()
    assert shown in generated[page]
    assert stale_pages(generated=generated) == [page]
    # The check's command line prints the file and the command that regenerates it, and exits 1.
    main = importlib.import_module("docs.generate.__main__").main
    monkeypatch.setattr("docs.generate.__main__.pages", lambda: generated)
    assert main(["--check"]) == 1


def test_the_check_passes_and_names_nothing_when_current(capsys):
    main = importlib.import_module("docs.generate.__main__").main
    assert main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_check_message_names_the_page_and_the_command(monkeypatch, capsys):
    _train_epochs_default(monkeypatch, 11)
    main = importlib.import_module("docs.generate.__main__").main
    assert main(["--check"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"docs/reference/params.md differs from what the code generates: run `{REGENERATE}`"
    )


SECTION = '''
from dataclasses import dataclass
from reprokit.core.checks import at_least as _at_least
from reprokit.core.checks import require as _require


@dataclass(frozen=True)
class Knobs:
    # Two lines above the field
    # say why it exists.
    width: int = 3  # and one beside it
    depth: int = 2

    tone: str = "low"
    """A string literal after a field documents it too."""

    def check(self, key):
        _at_least(key, "width", self.width, 1)
        _require(self.depth in (1, 2), f"{key}.depth", "1 or 2", self.depth)
        if self.width > 100:  # a branch the defaults do not take: not seen
            _require(False, f"{key}.tone", "never seen", self.tone)
        _require(True, "other.key", "a rule of another section's key", None)
'''


@pytest.fixture
def knobs(tmp_path, monkeypatch):
    (tmp_path / "doc_knobs.py").write_text(SECTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("doc_knobs").Knobs
    sys.modules.pop("doc_knobs", None)


def test_a_field_is_described_by_the_comments_above_and_beside_it_and_a_string_after_it(knobs):
    assert field_comment(knobs, "width") == "Two lines above the field say why it exists. and one beside it"
    assert field_comment(knobs, "depth") == ""
    assert field_comment(knobs, "tone") == "A string literal after a field documents it too."


def test_the_ranges_are_the_checks_own_words_for_its_own_keys(knobs):
    from reprokit.core import checks

    real = checks.require
    assert stated_ranges(knobs, "knobs") == {"knobs.width": ["an integer ≥ 1"], "knobs.depth": ["1 or 2"]}
    # Every binding of require is restored: a wrong value still raises.
    assert checks.require is real and sys.modules["reprokit.core.config_sections"]._require is real
    with pytest.raises(Exception, match="knobs.depth must be 1 or 2; got 5"):
        knobs(depth=5).check("knobs")


def test_the_generator_stays_out_of_the_package():
    # The runtime layers never import the docs generator (tests/unit/test_dvc_yaml.py checks their graph).
    for path in (ROOT / "reprokit").rglob("*.py"):
        assert "docs.generate" not in path.read_text(), path
