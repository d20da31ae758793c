"""The params.yaml schema: typed, frozen, strict.

``load_config("params.yaml")`` returns a :class:`Config`. Each section is a frozen dataclass;
unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with a one-line
message naming the key, the value received and what is allowed. Stages read only the
sections listed under their ``params`` in ``dvc.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit.core.checks import require as _require
from reprokit.core.components import LOSS_ARGS, MODEL_ARGS, LossConfig, ModelConfig  # noqa: F401

# The sections, the strict YAML reader and the secret helpers are re-exported: callers import them from here.
from reprokit.core.config_sections import (  # noqa: F401
    LOGGER_NAMES,
    MAX_TAG_LENGTH,
    SEED_MAX,
    DataConfig,
    DigitsConfig,
    LoggerConfig,
    SweepGroupConfig,
    TrainConfig,
    TrainerConfig,
    ValidateConfig,
    VisualizeConfig,
    tune_label_count,
)
from reprokit.core.errors import ConfigError
from reprokit.core.layout import PARAMS_FILE
from reprokit.core.schema import load_dataclass, to_plain
from reprokit.core.secrets import REDACTED, SECRET_PATTERNS, is_secret_key, redact, secret_values  # noqa: F401
from reprokit.core.strict_yaml import read_yaml

__all__ = [
    "Config",
    "load_config",
    "config_from_dict",
    "read_yaml",
    "flatten",
    "lookup",
    "set_dotted",
    "redact",
    "secret_values",
    "SECRET_PATTERNS",
    "LOGGER_NAMES",
]


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
        """The top-level keys and the rules that tie sections together."""
        _require(0 <= self.seed <= SEED_MAX, "seed", f"an integer in [0, {SEED_MAX}]", self.seed)
        for i, tag in enumerate(self.tags):
            ok = tag.strip() != "" and "," not in tag and len(tag) <= MAX_TAG_LENGTH
            # W&B cuts tags at MAX_TAG_LENGTH characters; key/value backends join the tags with commas.
            _require(ok, f"tags[{i}]", f"a non-empty string of at most {MAX_TAG_LENGTH} characters without commas", tag)
        self._check_visualize_metric()
        self._check_monitor()
        if self.model.name == "simple_cnn":
            blocks = len(self.model.args["channels"])
            _require(
                self.data.image_size >= 2**blocks,
                "data.image_size",
                f"≥ {2**blocks} with {blocks} entries in model.args.channels (each conv block halves the image)",
                self.data.image_size,
            )
        if self.validate.split == "tune" and self.data.tune_fraction == 0:
            raise ConfigError(
                "validate.split is 'tune' but data.tune_fraction is 0: there is no tuning split to score",
                hint="set data.tune_fraction (e.g. 0.2), or validate.split: validation",
            )
        digits, t = self.data.digits, self.train
        if self.data.dataframe_path() == Path(digits.output) / "df.csv":  # the embedded digits: counts known
            n_all, _ = digits.split_sizes()
            n_tune = tune_label_count(n_all, self.data.tune_fraction)
            n_train = n_all - n_tune
            _require(
                n_all < 2 or self.data.tune_fraction == 0 or 1 <= n_tune < n_all,
                "data.tune_fraction",
                f"a fraction that leaves labels for training and tuning (round({n_all} × fraction) in [1, {n_all - 1}])",
                self.data.tune_fraction,
            )
            held = f", less {n_tune} held out by data.tune_fraction" if n_tune else ""
            _require(
                t.n_labels <= n_train,
                "train.n_labels",
                f"≤ {n_train}, the training labels data.digits generates "
                f"(n_source {digits.n_labels()}, validation_fraction {digits.validation_fraction}{held})",
                t.n_labels,
            )
            _require(
                t.n_instances <= digits.views,
                "train.n_instances",
                f"≤ data.digits.views = {digits.views} (the instances each label has)",
                t.n_instances,
            )

    def _check_visualize_metric(self) -> None:
        """visualize ranks queries by a column of validate's per_query.tsv: one validate computes."""
        computed = self.validate.metric_names()
        metric = self.visualize.metric
        if metric in computed:
            return
        match = re.fullmatch(r"(cmc|precision|map)@([1-9]\d*)", metric)
        raise ConfigError(
            f"visualize.metric must be one of the metrics validate computes ({', '.join(computed)}); got {metric!r}",
            hint=f"add {match[2]} to validate.{match[1]}_top_k, or rank by a computed metric" if match else None,
        )

    def _check_monitor(self) -> None:
        """train.monitor picks the best epoch among validate's metrics, computed while training."""
        if self.train.checkpoint != "best":
            return
        computed = self.validate.metric_names()
        if self.train.monitor not in computed:
            raise ConfigError(
                f"train.monitor must be one of the metrics validate computes ({', '.join(computed)}); "
                f"got {self.train.monitor!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def load_config(path: str | Path = PARAMS_FILE) -> Config:
    data = read_yaml(path)
    return config_from_dict({} if data is None else data)


def config_from_dict(data: dict[str, Any]) -> Config:
    return load_dataclass(Config, data)


def lookup(params: dict[str, Any], key: str, missing: Any = None) -> Any:
    """The value at dotted ``key``; ``missing`` when any part is missing (a key the schema does not have yet)."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set dotted ``key`` in nested mappings, making the missing ones."""
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": value}; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    out[prefix[:-1]] = data
    return out
