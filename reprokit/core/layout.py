"""The run-folder layout: every path under ``runs/`` that a stage writes or the mirror reads.

This module is the one owner of those names. Writers (the stages, the run-folder logger, the
validation writer, the artifact writer) and the reader (``reprokit.mirror.runfolder``) build
their paths from it, so the contract in the README has a single counterpart in code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RUNS_ROOT", "TrainDir", "ValidateDir", "VisualizeDir", "ReportDir", "MirrorDir", "RunsDir", "STAGES", "media_name", "parse_media_name"]

STAGES = ("train", "validate", "visualize")
RUNS_ROOT = "runs"  # relative to the project; outputs, never part of the code a run records


class _StageDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root.as_posix()!r})"


class TrainDir(_StageDir):
    """``runs/train/``: the model, loss statistics, curves, logged media and reproducibility artifacts."""

    @property
    def model(self) -> Path:
        return self.root / "model.ckpt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def identity(self) -> Path:
        return self.root / "run.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def step_table(self) -> Path:
        return self.plots / "step.tsv"

    @property
    def epoch_table(self) -> Path:
        return self.plots / "epoch.tsv"

    @property
    def validation_table(self) -> Path:
        """Validation while training: one row per validated epoch (``epoch  step  val/<metric>...``).
        A table of its own, not columns of ``epoch.tsv``: with ``validate_every_n_epochs`` >= 2 those
        would hold empty cells, which ``dvc plots`` (Vega) draws as zeros."""
        return self.plots / "validation.tsv"

    @property
    def wall_times(self) -> Path:
        """When each step and epoch row was logged (Unix seconds): beside the curves, not in them,
        so the curves stay byte-identical run to run while a replay can still show the real times."""
        return self.root / "wall_times.tsv"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def texts(self) -> Path:
        return self.root / "text"


class ValidateDir(_StageDir):
    """``runs/validate/``: retrieval metrics, the raw-pixel baseline, the per-query table, the CMC curve."""

    @property
    def metrics(self) -> Path:
        """The headline numbers (``dvc exp show``): overall metrics and the query counts."""
        return self.root / "metrics.json"

    @property
    def by_category(self) -> Path:
        """``{"by_category": {category: {metric: value}}}``: a DVC output, not a metric, so that
        ``dvc exp show`` lists one column per overall metric rather than one per category and metric."""
        return self.root / "by_category.json"

    @property
    def baseline(self) -> Path:
        return self.root / "baseline.json"

    @property
    def per_query(self) -> Path:
        return self.root / "per_query.tsv"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def cmc(self) -> Path:
        return self.plots / "cmc.tsv"

    @property
    def by_category_table(self) -> Path:
        """The per-category metrics as a table (``category`` + one column per metric): a DVC plot,
        committed with the metrics (``cache: false``), so ``reprokit reproduce`` proves them too."""
        return self.plots / "by_category.tsv"

    @property
    def params(self) -> Path:
        """The params.yaml sections this validation used (part of the pipeline run's identity)."""
        return self.root / "params.yaml"


class VisualizeDir(_StageDir):
    """``runs/visualize/``: the figures, each a PNG."""

    @property
    def worst_queries(self) -> Path:
        return self.root / "worst_queries.png"

    @property
    def gradcam(self) -> Path:
        """The worst queries with Grad-CAM heat maps over each query and retrieved item."""
        return self.root / "gradcam.png"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"


class ReportDir(_StageDir):
    """``runs/report/``: the run's page, self-contained (no request leaves it)."""

    @property
    def page(self) -> Path:
        return self.root / "index.html"


class MirrorDir(_StageDir):
    @property
    def report(self) -> Path:
        return self.root / "report.json"


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
