"""The run-folder layout is declared once (reprokit.core.layout) and everything else takes its paths from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reprokit.core import layout
from reprokit.core.layout import RUNS_ROOT, RunsDir, TrainDir, ValidateDir
from reprokit.core.stage_runner import stage_parser

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STAGE_DIRS = (
    layout.TrainDir,
    layout.ArtifactsDir,
    layout.ValidateDir,
    layout.VisualizeDir,
    layout.ReportDir,
    layout.MirrorDir,
)


def _entries(cls: type) -> list[str]:
    return [name for name, value in vars(cls).items() if isinstance(value, layout._Entry)]


@pytest.mark.parametrize("cls", STAGE_DIRS, ids=lambda c: c.__name__)
def test_every_entry_is_a_distinct_path_inside_its_stage_folder(cls, tmp_path):
    folder = cls(tmp_path / "stage")
    paths = {name: getattr(folder, name) for name in _entries(cls)}
    assert paths, f"{cls.__name__} declares no path"
    for name, path in paths.items():
        assert path.is_relative_to(folder.root), (name, path)
        assert path != folder.root, name
    assert len(set(paths.values())) == len(paths), f"two names of {cls.__name__} point at one file: {paths}"


def test_an_entry_read_on_the_class_is_its_relative_path_and_on_a_folder_is_below_it():
    assert TrainDir.step_table == Path("plots/step.tsv")
    assert TrainDir("elsewhere/train").step_table == Path("elsewhere/train/plots/step.tsv")
    assert ValidateDir("v").by_category_table == Path("v/plots/by_category.tsv")
    assert RunsDir().train.artifact_files.config == Path("runs/train/artifacts/config.yaml")


def test_runs_dir_puts_each_stage_under_the_runs_root():
    runs = RunsDir()
    assert runs.root == Path(RUNS_ROOT)
    assert runs.train.model == Path("runs/train/model.ckpt")
    assert runs.validate.metrics == Path("runs/validate/metrics.json")
    assert runs.visualize.worst_queries == Path("runs/visualize/worst_queries.png")


def test_stage_path_options_take_their_defaults_from_the_layout_and_can_be_overridden():
    runs = RunsDir()
    parser = stage_parser("visualize", None, per_query=runs.validate.per_query, out=runs.visualize.root)
    args = parser.parse_args([])
    assert args.per_query == "runs/validate/per_query.tsv"
    assert args.out == "runs/visualize"
    assert args.params == "params.yaml" and args.verbose is False
    assert parser.parse_args(["--per-query", "x.tsv"]).per_query == "x.tsv"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_but_the_layout_spells_a_run_folder_path():
    # A second spelling of runs/<stage>/... is how a writer and the mirror's reader drift apart.
    sources = sorted((PROJECT_ROOT / "reprokit").rglob("*.py")) + sorted((PROJECT_ROOT / "stages").rglob("*.py"))
    owner = PROJECT_ROOT / "reprokit" / "core" / "layout.py"
    spelled = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: {value!r}"
        for path in sources
        if path != owner
        for line, value in _string_constants(path)
        if value == RUNS_ROOT or value.startswith(f"{RUNS_ROOT}/")
    ]
    assert not spelled, "run paths spelled outside reprokit/core/layout.py:\n" + "\n".join(spelled)


# Names a run-folder file shares with something else: the project's own params.yaml, and the CSV
# logger's tags.json in its own folder under logs/.
NOT_RUN_FILES = {("*", "params.yaml"), ("reprokit/mirror/csv_backend.py", "tags.json")}


def test_no_module_but_the_layout_spells_a_run_folder_file_name():
    files = {
        name
        for cls in STAGE_DIRS
        for entry in _entries(cls)
        for name in (getattr(cls, entry).as_posix(), getattr(cls, entry).name)
        if "." in name  # files, not folders ("plots", "text" are common words)
    }
    sources = sorted((PROJECT_ROOT / "reprokit").rglob("*.py")) + sorted((PROJECT_ROOT / "stages").rglob("*.py"))
    owner = PROJECT_ROOT / "reprokit" / "core" / "layout.py"
    spelled = []
    for path in sources:
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        for line, value in _string_constants(path) if path != owner else []:
            if value in files and ("*", value) not in NOT_RUN_FILES and (rel, value) not in NOT_RUN_FILES:
                spelled.append(f"{rel}:{line}: {value!r}")
    assert not spelled, "run-folder file names spelled outside reprokit/core/layout.py:\n" + "\n".join(spelled)
