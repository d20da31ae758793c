"""The run-folder layout: every path under ``runs/`` that a stage writes or the mirror reads.

This module is the one owner of those names. Writers (the stages, the run-folder logger, the
validation writer, the artifact writer) and the reader (``reprokit.mirror.runfolder``) build
their paths from it, so the contract in the README has a single counterpart in code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "PARAMS_FILE",
    "RUNS_ROOT",
    "TrainDir",
    "ArtifactsDir",
    "ValidateDir",
    "VisualizeDir",
    "ReportDir",
    "MirrorDir",
    "RunsDir",
    "STAGES",
    "media_name",
    "parse_media_name",
]

STAGES = ("train", "validate", "visualize")
RUNS_ROOT = "runs"  # relative to the project; outputs, never part of the code a run records
# The project's config file (relative to the project), DVC's default params file; the records of the
# sections a stage read (runs/<stage>/params.yaml) carry its name.
PARAMS_FILE = "params.yaml"


class _Entry:
    """A path below a stage folder, declared once as a class attribute: ``model = _Entry("model.ckpt")``.

    Read on an instance it is that folder's path (``TrainDir("runs/train").model``); the layout
    then reads as a table, one line per file, with the reason for a file beside it when it has one.
    """

    def __init__(self, relative: str, doc: str | None = None) -> None:
        self.relative = relative
        self.__doc__ = doc

    def __get__(self, folder: _StageDir | None, owner: type | None = None) -> Path:
        if folder is None:  # on the class itself (help(), introspection): the relative path
            return Path(self.relative)
        return folder.root / self.relative


class _StageDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root.as_posix()!r})"


class ArtifactsDir(_StageDir):
    """``runs/train/artifacts/``: what it takes to re-create the run (written by reprokit.provenance)."""

    code = _Entry("code.tar.gz", "The git-tracked files as they were in the working tree at run time.")
    diff = _Entry("diff.patch", "`git diff HEAD` of the tracked files, secrets scrubbed.")
    git = _Entry("git.json", "Commit, branch, dirty flag.")
    config = _Entry("config.yaml", "The resolved config, secret-looking values redacted.")
    dataframe = _Entry("dataframe.csv")
    dataframe_record = _Entry("dataframe.json", "The dataframe's sha256 and where it was read.")
    tags = _Entry("tags.json", "User tags and automatic ones (git, the DVC experiment's name).")
    env = _Entry("env.json", "Python, torch, Lightning and DVC versions, the installed packages, the seed.")
    label_map = _Entry("label_map.csv", "With data.label_map: auto, the number each text label got.")


class TrainDir(_StageDir):
    """``runs/train/``: the model, loss statistics, curves, logged media and reproducibility artifacts."""

    model = _Entry("model.ckpt")
    metrics = _Entry("metrics.json")
    identity = _Entry("run.json")
    hparams = _Entry("hparams.json", "What Lightning's log_hyperparams received.")
    plots = _Entry("plots")
    step_table = _Entry("plots/step.tsv")
    epoch_table = _Entry("plots/epoch.tsv")
    # A table of its own, not columns of epoch.tsv: with validate_every_n_epochs >= 2 those would
    # hold empty cells, which `dvc plots` (Vega) draws as zeros.
    validation_table = _Entry("plots/validation.tsv", "Validation while training: one row per validated epoch.")
    # Beside the curves, not in them, so the curves stay byte-identical run to run while a replay
    # can still show the real times.
    wall_times = _Entry("wall_times.tsv", "When each step and epoch row was logged (Unix seconds).")
    artifacts = _Entry("artifacts")
    images = _Entry("images")
    texts = _Entry("text")

    @property
    def artifact_files(self) -> ArtifactsDir:
        return ArtifactsDir(self.artifacts)


class ValidateDir(_StageDir):
    """``runs/validate/``: retrieval metrics, the raw-pixel baseline, the per-query table, the CMC curve."""

    metrics = _Entry("metrics.json", "The headline numbers (dvc exp show): overall metrics and the query counts.")
    # A DVC output, not a metric, so that `dvc exp show` lists one column per overall metric
    # rather than one per category and metric.
    by_category = _Entry("by_category.json", '{"by_category": {category: {metric: value}}}')
    baseline = _Entry("baseline.json")
    per_query = _Entry("per_query.tsv")
    plots = _Entry("plots")
    cmc = _Entry("plots/cmc.tsv")
    # A DVC plot committed with the metrics (cache: false), so `reprokit reproduce` proves them too.
    by_category_table = _Entry("plots/by_category.tsv", "The per-category metrics: category + one column per metric.")
    params = _Entry(PARAMS_FILE, "The params.yaml sections this validation used (part of the run's identity).")


class VisualizeDir(_StageDir):
    """``runs/visualize/``: the figures, each a PNG."""

    worst_queries = _Entry("worst_queries.png")
    gradcam = _Entry("gradcam.png", "The worst queries with Grad-CAM heat maps over each query and retrieved item.")
    params = _Entry(PARAMS_FILE)


class ReportDir(_StageDir):
    """``runs/report/``: the run's page, self-contained (no request leaves it)."""

    page = _Entry("index.html")


class MirrorDir(_StageDir):
    """``runs/mirror/``: what the last mirror sent, and where."""

    report = _Entry("report.json")


class RunsDir:
    """``runs/`` as a whole: one attribute per stage folder."""

    def __init__(self, root: str | Path = RUNS_ROOT) -> None:
        self.root = Path(root)
        self.train = TrainDir(self.root / "train")
        self.validate = ValidateDir(self.root / "validate")
        self.visualize = VisualizeDir(self.root / "visualize")
        self.report = ReportDir(self.root / "report")
        self.mirror = MirrorDir(self.root / "mirror")


def media_name(step: int, occurrence: int, suffix: str) -> str:
    """``<step><suffix>`` for the first image/text logged under a key at a step, ``<step>-<n><suffix>`` after.

    Several media with one key and step (one image per validation batch) must never overwrite each other.
    """
    return f"{step}{suffix}" if occurrence == 0 else f"{step}-{occurrence}{suffix}"


def parse_media_name(stem: str) -> tuple[int, int] | None:
    """``(step, occurrence)`` of a file stem written by :func:`media_name`; None for any other name."""
    step, _, occurrence = stem.partition("-")
    if not step.isdigit() or (occurrence and not occurrence.isdigit()):
        return None
    return int(step), int(occurrence or 0)
