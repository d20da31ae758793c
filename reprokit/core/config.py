"""The params.yaml schema: typed, frozen, strict.

``load_config("params.yaml")`` returns a :class:`Config`. Each section is a frozen dataclass;
unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with a one-line
message naming the key, the value received and what is allowed. Stages read only the
sections listed under their ``params`` in ``dvc.yaml``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from reprokit.core.errors import ConfigError
from reprokit.core.schema import load_dataclass, to_plain

__all__ = [
    "Config",
    "load_config",
    "config_from_dict",
    "flatten",
    "redact",
    "secret_values",
    "SECRET_PATTERNS",
    "LOGGER_NAMES",
]

LOGGER_NAMES = ("tensorboard", "csv", "mlflow", "clearml", "wandb")
SECRET_PATTERNS = ("*token*", "*key*", "*secret*", "*password*")
REDACTED = "***REDACTED***"


def _positive(key: str, name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key}.{name} must be {bound}; got {value!r}")


@dataclass(frozen=True)
class DigitsConfig:
    """The embedded default dataset: distorted views of scikit-learn's handwritten digits."""

    output: str = "data/digits"
    n_source: int | None = None  # use only this many source images (a random subset); null = all 1,797
    views: int = 4
    image_size: int = 32
    rotation_deg: float = 20.0
    scale: float = 0.15
    shift: float = 0.15
    noise: float = 0.1
    validation_fraction: float = 0.33

    def check(self, key: str) -> None:
        if self.views < 2:
            raise ConfigError(f"{key}.views must be >= 2 (a label needs a query and a match); got {self.views}")
        if self.n_source is not None and not 10 <= self.n_source <= 1797:
            raise ConfigError(f"{key}.n_source must be null or between 10 and 1797; got {self.n_source}")
        if not 16 <= self.image_size <= 256:
            raise ConfigError(f"{key}.image_size must be between 16 and 256; got {self.image_size}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(
                f"{key}.validation_fraction must be between 0 and 1 (exclusive); got {self.validation_fraction}"
            )
        for name in ("rotation_deg", "scale", "shift", "noise"):
            _positive(key, name, getattr(self, name), allow_zero=True)


@dataclass(frozen=True)
class DataConfig:
    dataframe: str | None = None  # an OML-format CSV; None -> the embedded digits dataset
    root: str | None = None  # image paths are relative to this; default: the CSV's folder
    allow_outside_root: bool = False
    image_size: int = 32  # images are resized to image_size x image_size (after the bounding-box crop)
    image_mode: Literal["L", "RGB"] = "L"  # grayscale or colour
    digits: DigitsConfig = field(default_factory=DigitsConfig)


    def check(self, key: str) -> None:
        if not 8 <= self.image_size <= 1024:
            raise ConfigError(f"{key}.image_size must be between 8 and 1024; got {self.image_size}")

    def dataframe_path(self) -> Path:
        return Path(self.dataframe) if self.dataframe else Path(self.digits.output) / "df.csv"

    def root_path(self) -> Path:
        return Path(self.root) if self.root else self.dataframe_path().parent


@dataclass(frozen=True)
class ModelConfig:
    name: Literal["simple_cnn"] = "simple_cnn"
    channels: tuple[int, ...] = (16, 32, 64)
    embedding_dim: int = 64

    def check(self, key: str) -> None:
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"{key}.channels must be a non-empty list of positive ints; got {list(self.channels)}")
        _positive(key, "embedding_dim", self.embedding_dim)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    n_labels: int = 32  # labels per batch
    n_instances: int = 4  # instances of each label per batch
    lr: float = 3e-3
    weight_decay: float = 0.0
    margin: float = 0.5
    miner: Literal["all", "hard"] = "all"
    num_workers: int = 0
    resume: bool = False
    log_every_n_steps: int = 1

    def check(self, key: str) -> None:
        _positive(key, "epochs", self.epochs)
        _positive(key, "n_labels", self.n_labels)
        if self.n_instances < 2:
            raise ConfigError(f"{key}.n_instances must be >= 2 (a triplet needs a positive); got {self.n_instances}")
        _positive(key, "lr", self.lr)
        _positive(key, "weight_decay", self.weight_decay, allow_zero=True)
        _positive(key, "margin", self.margin, allow_zero=True)
        _positive(key, "num_workers", self.num_workers, allow_zero=True)
        _positive(key, "log_every_n_steps", self.log_every_n_steps)


@dataclass(frozen=True)
class ValidateConfig:
    batch_size: int = 256
    distance: Literal["euclidean", "cosine"] = "euclidean"
    cmc_top_k: tuple[int, ...] = (1, 5)
    precision_top_k: tuple[int, ...] = (5,)
    map_top_k: tuple[int, ...] = (5,)
    memory_budget_mb: int = 1024

    def check(self, key: str) -> None:
        _positive(key, "batch_size", self.batch_size)
        _positive(key, "memory_budget_mb", self.memory_budget_mb)
        for name in ("cmc_top_k", "precision_top_k", "map_top_k"):
            for k in getattr(self, name):
                if k <= 0:
                    raise ConfigError(f"{key}.{name} values must be > 0; got {k}")

    def metric_names(self) -> list[str]:
        return (
            [f"cmc@{k}" for k in self.cmc_top_k]
            + [f"precision@{k}" for k in self.precision_top_k]
            + [f"map@{k}" for k in self.map_top_k]
        )


@dataclass(frozen=True)
class VisualizeConfig:
    metric: str = "map@5"  # rank queries by this per-query metric, worst first
    n_queries: int = 6
    top_k: int = 5
    n_ground_truth: int = 2

    def check(self, key: str) -> None:
        _positive(key, "n_queries", self.n_queries)
        _positive(key, "top_k", self.top_k)
        _positive(key, "n_ground_truth", self.n_ground_truth, allow_zero=True)


@dataclass(frozen=True)
class LoggerConfig:
    name: str = "tensorboard"
    args: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # fail the stage when mirroring fails (default: warn and record)
    timeout_s: float = 60.0  # bound on the whole replay into a backend

    def check(self, key: str) -> None:
        if self.name == "neptune":
            raise ConfigError(
                f"{key}.name 'neptune' is no longer supported: Neptune's hosted service has shut down and "
                f"Lightning removed its NeptuneLogger; use one of {', '.join(LOGGER_NAMES)}"
            )
        if self.name not in LOGGER_NAMES:
            raise ConfigError(f"{key}.name must be one of {', '.join(LOGGER_NAMES)}; got {self.name!r}")
        _positive(key, "timeout_s", self.timeout_s)


@dataclass(frozen=True)
class TrainerConfig:
    """Passed through to ``lightning.Trainer``; the defaults run on a laptop CPU."""

    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    default_root_dir: str = "runs/train"

    def check(self, key: str) -> None:
        _positive(key, "devices", self.devices)
        _positive(key, "num_nodes", self.num_nodes)


@dataclass(frozen=True)
class Config:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tags: tuple[str, ...] = ()

    def check(self, key: str) -> None:
        known = set(ValidateConfig().metric_names()) | set(self.validate.metric_names())
        if self.visualize.metric not in known:
            raise ConfigError(
                f"visualize.metric must be one of the computed metrics {', '.join(self.validate.metric_names())}; "
                f"got {self.visualize.metric!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def load_config(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found", hint="run from the project root")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> Config:
    return load_dataclass(Config, data)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": value}; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    out[prefix[:-1]] = data
    return out


def is_secret_key(key: str) -> bool:
    name = str(key).lower()
    return any(fnmatch.fnmatch(name, pat) for pat in SECRET_PATTERNS)


def secret_values(data: Any) -> list[str]:
    """The non-empty values stored under secret-looking keys, for scrubbing them from any text."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if is_secret_key(k) and v not in (None, "") and not isinstance(v, (dict, list)):
                found.append(str(v))
            else:
                found.extend(secret_values(v))
    elif isinstance(data, list):
        for v in data:
            found.extend(secret_values(v))
    return found


def redact(data: Any) -> Any:
    """A copy of ``data`` where values under secret-looking keys are replaced."""
    if isinstance(data, dict):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
