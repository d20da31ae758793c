"""Backend name -> implementation, imported only when chosen.

Each entry names the module holding the backend class, the third-party package it needs and the
extra that installs it. ``backend_class`` checks the package first, so a missing one fails at
start with the exact install line, before any file is read.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprokit.core.config import LOGGER_NAMES, is_secret_key
from reprokit.core.config_sections import check_logger_name
from reprokit.core.errors import ConfigError, MissingBackendError

if TYPE_CHECKING:
    from reprokit.mirror.base import MirrorBackend

__all__ = ["BackendSpec", "BACKENDS", "spec", "backend_class", "check_args", "secret_args"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str  # reprokit.mirror.<module>; a dotted name (a test's own backend) is imported as it is
    cls: str
    package: str  # import name of the third-party package it needs
    extra: str | None  # pip extra; None = a core dependency of reprokit
    token_env: str | None = None  # where that backend takes an API token from
    local: bool = False  # reprokit's own code writing local files: any error in it is a bug, not a warning


_IMPLEMENTED = (
    BackendSpec("tensorboard", "tensorboard", "TensorBoardBackend", "tensorboard", None, local=True),
    BackendSpec("csv", "csv_backend", "CsvBackend", "yaml", None, local=True),
    BackendSpec("mlflow", "mlflow", "MlflowBackend", "mlflow", "mlflow", "MLFLOW_TRACKING_TOKEN"),
    BackendSpec(
        "clearml", "clearml", "ClearMLBackend", "clearml", "clearml", "CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY"
    ),
    BackendSpec("wandb", "wandb", "WandbBackend", "wandb", "wandb", "WANDB_API_KEY"),
)
# Which loggers exist is the schema's list (LOGGER_NAMES), in its order; this table only says how each
# is implemented (a name without an implementation fails here, at import; a test checks that no
# implementation is left without a name).
_BY_NAME = {s.name: s for s in _IMPLEMENTED}
BACKENDS: dict[str, BackendSpec] = {name: _BY_NAME[name] for name in LOGGER_NAMES}


def spec(name: str, registry: Mapping[str, BackendSpec] = BACKENDS) -> BackendSpec:
    check_logger_name(name, names=registry)
    return registry[name]


def backend_class(name: str, registry: Mapping[str, BackendSpec] = BACKENDS) -> type[MirrorBackend]:
    """The backend class of ``name``; MissingBackendError with the install line if its package is absent."""
    s = spec(name, registry)
    target = f'"reprokit[{s.extra}]"' if s.extra else "reprokit"
    missing = f"logger.name is {name!r} but the {s.package!r} package is not installed"
    try:
        found = importlib.util.find_spec(s.package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingBackendError(missing, hint=f"pip install {target}")
    try:
        module = importlib.import_module(s.module if "." in s.module else f"reprokit.mirror.{s.module}")
    except ImportError as exc:  # installed but broken (e.g. a missing dependency of it)
        raise MissingBackendError(
            f"{missing} correctly ({' '.join(str(exc).split())})", hint=f"pip install {target}"
        ) from None
    return getattr(module, s.cls)


def secret_args(args: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in args if is_secret_key(k))


def check_args(name: str, args: Mapping[str, Any], allowed: Mapping[str, str]) -> None:
    """Unknown args -> ConfigError listing the allowed ones. Secret-looking keys are let through
    here (the replay drops them with a warning: tokens come from the environment only)."""
    unknown = sorted(k for k in args if k not in allowed and not is_secret_key(k))
    if unknown:
        raise ConfigError(
            f"logger.args for {name!r} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed)) or '(none)'}"
        )
