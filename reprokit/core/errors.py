"""One exception class per kind of failure, all under :class:`ReprokitError`.

The CLI and the stage entry points turn any ``ReprokitError`` into a single line on stderr
(plus its hint) and a non-zero exit; a traceback only appears with ``--verbose`` or
``REPROKIT_DEBUG=1``.
"""

from __future__ import annotations

__all__ = [
    "ReprokitError",
    "ConfigError",
    "DataFrameError",
    "MissingBackendError",
    "MirrorError",
    "ReportError",
    "TrainingDivergedError",
    "ReproduceError",
    "LogValueError",
    "GradCamError",
    "CompareError",
    "SweepError",
    "DependencyError",
]


class ReprokitError(Exception):
    """Base class of every error reprokit reports to a user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(ReprokitError):
    """params.yaml has an unknown key, a wrong type or an out-of-range value."""


class DataFrameError(ReprokitError):
    """The dataset dataframe (OML format) or the files it points to are invalid."""


class MissingBackendError(ReprokitError):
    """An optional logger backend was chosen but its package is not installed."""


class MirrorError(ReprokitError):
    """Mirroring a run into the experiment logger failed."""


class ReportError(ReprokitError):
    """The run's report cannot be built from the files under ``runs/``."""


class TrainingDivergedError(ReprokitError):
    """The training loss became NaN or infinite."""


class ReproduceError(ReprokitError):
    """`reprokit reproduce` could not check out, run or compare a past revision."""


class GradCamError(ReprokitError):
    """Grad-CAM cannot run on the model: no such layer, or one without spatial output [N, C, H, W]."""


class CompareError(ReprokitError):
    """`reprokit compare` cannot read a revision's run, or the two runs are not comparable."""


class LogValueError(ReprokitError, ValueError):
    """A value passed to ``self.log`` is neither a scalar, an image nor a text.

    Also a ``ValueError``: Lightning raises that for a value it cannot log, so code catching it still works.
    """


class SweepError(ReprokitError):
    """`reprokit sweep` cannot reach its study storage, run its trials, or find what it ran."""


class DependencyError(ReprokitError):
    """A file a stage reads (code, data, weights) is not among its DVC dependencies in dvc.yaml."""
