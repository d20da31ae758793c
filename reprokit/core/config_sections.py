"""The sections of params.yaml, one frozen dataclass each, with the checks of their own keys.

``reprokit.core.config.Config`` puts them together (and checks what ties sections to each
other); ``load_dataclass`` fills them from YAML, so a field's type is the type a key accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reprokit.core.checks import at_least as _at_least
from reprokit.core.checks import ks as _ks
from reprokit.core.checks import non_negative as _non_negative
from reprokit.core.checks import path as _path
from reprokit.core.checks import require as _require
from reprokit.core.components import AugmentConfig, LossConfig, MinerConfig, OptimizerConfig, SchedulerConfig
from reprokit.core.errors import ConfigError
from reprokit.core.layout import RunsDir
from reprokit.core.metric_names import EXTRA_METRICS, metric_names, unknown_extra_metrics

# The loggers logger.name may name: the one list (reprokit.mirror.registry maps each to its backend).
LOGGER_NAMES = ("tensorboard", "csv", "mlflow", "clearml", "wandb")
# Loggers reprokit no longer offers, with the reason a user who names one is told.
RETIRED_LOGGERS = {"neptune": "Neptune's hosted service has shut down and Lightning removed its NeptuneLogger"}

N_DIGITS = 1797  # source images in scikit-learn's digits
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range is [0, 2**32 - 1]
# Batch-all mining holds a [B, B, B] triplet mask: about 1.2 GiB at B = 1024, 10 GiB at 2048.
MAX_BATCH_ALL = 2048
# W&B's limit on a tag, the strictest of the loggers: a tag, and a sweep's name (logger.sweep.name,
# the sweep file's stem, which the trials' runs carry as a tag) are at most this long.
MAX_TAG_LENGTH = 64
MAX_DEVICES = 1024


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
        _path(key, "output", self.output, nullable=False)
        n = self.n_source
        _require(n is None or 10 <= n <= N_DIGITS, f"{key}.n_source", f"null or an integer in [10, {N_DIGITS}]", n)
        _require(self.views >= 2, f"{key}.views", "an integer ≥ 2 (a label needs a query and a match)", self.views)
        _require(16 <= self.image_size <= 256, f"{key}.image_size", "an integer in [16, 256]", self.image_size)
        for name in ("rotation_deg", "shift", "noise"):
            _non_negative(key, name, getattr(self, name))
        # The view is scaled by 1 + uniform(-scale, scale): it must stay > 0.
        _require(0 <= self.scale < 1, f"{key}.scale", "a number in [0, 1)", self.scale)
        vf = self.validation_fraction
        _require(0 < vf < 1, f"{key}.validation_fraction", "a number in (0, 1)", vf)
        n_train, n_val = self.split_sizes()
        _require(
            n_train >= 1 and n_val >= 1,
            f"{key}.validation_fraction",
            f"a fraction that leaves labels in both splits (round({self.n_labels()} × fraction) in "
            f"[1, {self.n_labels() - 1}]; here {n_val})",
            vf,
        )

    def n_labels(self) -> int:
        """Labels the generated dataset has: one per source image."""
        return N_DIGITS if self.n_source is None else self.n_source

    def split_sizes(self) -> tuple[int, int]:
        """(training labels, validation labels) the generated dataset has, as ``generate_digits`` splits them."""
        n = self.n_labels()
        n_val = int(round(n * self.validation_fraction))
        return n - n_val, n_val


@dataclass(frozen=True)
class DataConfig:
    # An OML-format CSV (None: the embedded digits' CSV) and the folder its paths are relative to
    # (None: the CSV's folder). params.yaml spells both out: dvc.yaml lists them as dependencies.
    dataframe: str | None = "data/digits/df.csv"
    root: str | None = "data/digits"
    allow_outside_root: bool = False
    image_size: int = 32  # images are resized to image_size x image_size (after the bounding-box crop)
    image_mode: Literal["L", "RGB"] = "L"  # grayscale or colour
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    # Embedded datasets the prepare stage generates (dvc.yaml runs one prepare@<name> per entry):
    # [digits] while data.dataframe is the embedded digits' CSV, [] once it is your own data.
    generate: tuple[Literal["digits"], ...] = ("digits",)
    # "auto": labels that are not integers (names, SKUs) are numbered in sorted order, the same in
    # every stage; the train stage records the mapping in runs/train/artifacts/label_map.csv.
    label_map: Literal["auto"] | None = None
    # Honest tuning (`reprokit sweep`): this fraction of the training labels, drawn with tune_seed, is
    # held out of training as the "tune" split (class-disjoint), which validate scores with validate.split: tune.
    tune_fraction: float = 0.0
    tune_seed: int = 0

    def check(self, key: str) -> None:
        _path(key, "dataframe", self.dataframe, nullable=True)
        tf = self.tune_fraction
        _require(0 <= tf < 1, f"{key}.tune_fraction", "a number in [0, 1) (0: no tuning split)", tf)
        _require(0 <= self.tune_seed <= SEED_MAX, f"{key}.tune_seed", f"an integer in [0, {SEED_MAX}]", self.tune_seed)
        _path(key, "root", self.root, nullable=True)
        _require(8 <= self.image_size <= 1024, f"{key}.image_size", "an integer in [8, 1024]", self.image_size)
        digits_csv = Path(self.digits.output) / "df.csv"
        uses_digits = self.dataframe is None or Path(self.dataframe) == digits_csv
        if "digits" in self.generate and not uses_digits:
            raise ConfigError(
                f"{key}.generate lists 'digits' but {key}.dataframe is your own CSV ({self.dataframe!r}); "
                "set data.generate: [] so the embedded dataset is not generated for nothing"
            )
        if "digits" not in self.generate and uses_digits:
            raise ConfigError(
                f"{key}.dataframe is the embedded digits' CSV ({str(digits_csv)!r}) but {key}.generate is "
                f"{list(self.generate)}; set data.generate: [digits], or data.dataframe to your own CSV"
            )

    def dataframe_path(self) -> Path:
        return Path(self.dataframe) if self.dataframe else Path(self.digits.output) / "df.csv"

    def root_path(self) -> Path:
        return Path(self.root) if self.root else self.dataframe_path().parent


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    n_labels: int = 32  # labels per batch
    n_instances: int = 4  # instances of each label per batch
    # Shorthand for train.optimizer.args.lr / .weight_decay (set one or the other, not both).
    lr: float | None = 3e-3
    weight_decay: float | None = None
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)  # torch.optim's Adam by default
    scheduler: SchedulerConfig | None = None  # null: a constant learning rate
    miner: MinerConfig | None = None  # for pml: losses (the built-in triplet mines with loss.args.miner)
    augment: tuple[AugmentConfig, ...] = ()  # kornia.augmentation classes, training batches only
    num_workers: int = 0
    resume: bool = False
    log_every_n_steps: int = 1
    # Embed the validation split every n epochs (and after the last) and log validate's overall
    # metrics as val/<metric> in plots/validation.tsv and live (0: never).
    validate_every_n_epochs: int = 1
    checkpoint: Literal["last", "best"] = "last"  # best: model.ckpt is the epoch with the highest `monitor`
    monitor: str = "map@5"  # with checkpoint: best, a metric validate computes (higher is better)

    def check(self, key: str) -> None:
        _at_least(key, "epochs", self.epochs, 1)
        _at_least(key, "validate_every_n_epochs", self.validate_every_n_epochs, 0)
        if self.checkpoint == "best" and self.validate_every_n_epochs == 0:
            raise ConfigError(
                f"{key}.checkpoint 'best' needs validation while training; got {key}.validate_every_n_epochs 0",
                hint=f"set {key}.validate_every_n_epochs to 1 or more, or {key}.checkpoint: last",
            )
        _require(self.n_labels >= 2, f"{key}.n_labels", "an integer ≥ 2 (a triplet needs a negative)", self.n_labels)
        n_inst = self.n_instances
        _require(n_inst >= 2, f"{key}.n_instances", "an integer ≥ 2 (a triplet needs a positive)", n_inst)
        batch_all = self.loss.name == "triplet" and self.loss.args["miner"] == "all"
        if batch_all and self.n_labels * n_inst > MAX_BATCH_ALL:
            raise ConfigError(
                f"{key}.n_labels × {key}.n_instances must be ≤ {MAX_BATCH_ALL} with {key}.loss.args.miner 'all' "
                f"(batch-all holds a B³ triplet mask, about 10 GiB at {MAX_BATCH_ALL}); "
                f"got {self.n_labels} × {n_inst} = {self.n_labels * n_inst}",
                hint=f"use smaller batches or {key}.loss.args.miner: hard",
            )
        _require(self.lr is None or self.lr > 0, f"{key}.lr", "null or a number > 0", self.lr)
        wd = self.weight_decay
        _require(wd is None or wd >= 0, f"{key}.weight_decay", "null or a number ≥ 0", wd)
        for short in ("lr", "weight_decay"):
            if getattr(self, short) is not None and short in self.optimizer.args:
                raise ConfigError(
                    f"{key}.{short} and {key}.optimizer.args.{short} are both set "
                    f"({getattr(self, short)!r} and {self.optimizer.args[short]!r}): one learning-rate setting, one place",
                    hint=f"remove {key}.{short} (or set it to null) and keep {key}.optimizer.args.{short}",
                )
        if self.miner is not None and not self.loss.name.startswith("pml:"):
            own = (
                f"; the built-in triplet mines with {key}.loss.args.miner (all or hard)"
                if self.loss.name == "triplet"
                else ""
            )
            raise ConfigError(
                f"{key}.miner must be null unless {key}.loss.name is a pml: loss (a miner's tuples are "
                f"pytorch-metric-learning's indices_tuple){own}; got {self.miner.name!r} with {key}.loss.name {self.loss.name!r}"
            )
        _at_least(key, "num_workers", self.num_workers, 0)
        _at_least(key, "log_every_n_steps", self.log_every_n_steps, 1)


@dataclass(frozen=True)
class ValidateConfig:
    batch_size: int = 256
    distance: Literal["euclidean", "cosine"] = "euclidean"
    cmc_top_k: tuple[int, ...] = (1, 5)
    precision_top_k: tuple[int, ...] = (5,)
    map_top_k: tuple[int, ...] = (5,)
    # pytorch-metric-learning's metrics (map@r, r_precision, mrr, ap); see reprokit.evaluate.ranks
    extra_metrics: tuple[str, ...] = ("map@r", "r_precision")
    memory_budget_mb: int = 1024
    num_workers: int = 0  # DataLoader worker processes decoding the validation images (0: in the stage's process)
    # The split validate scores: the validation split, or the tuning split that data.tune_fraction holds out.
    split: Literal["validation", "tune"] = "validation"

    def check(self, key: str) -> None:
        _at_least(key, "batch_size", self.batch_size, 1)
        _at_least(key, "memory_budget_mb", self.memory_budget_mb, 1)
        _at_least(key, "num_workers", self.num_workers, 0)
        # cmc@k always: the validate stage draws the CMC curve and retrieves max(cmc_top_k) items.
        _ks(key, "cmc_top_k", self.cmc_top_k, non_empty=True)
        _ks(key, "precision_top_k", self.precision_top_k, non_empty=False)
        _ks(key, "map_top_k", self.map_top_k, non_empty=False)
        extra = self.extra_metrics
        allowed = f"a list of distinct names from {', '.join(EXTRA_METRICS)}"
        _require(
            not unknown_extra_metrics(extra) and len(set(extra)) == len(extra), f"{key}.extra_metrics", allowed, extra
        )

    def metric_names(self) -> list[str]:
        """Every metric the validate stage computes, in the order of its files."""
        return metric_names(self.cmc_top_k, self.precision_top_k, self.map_top_k, self.extra_metrics)


@dataclass(frozen=True)
class VisualizeConfig:
    metric: str = "map@5"  # rank queries by this per-query metric, worst first
    n_queries: int = 6
    top_k: int = 5
    n_ground_truth: int = 2
    # The module path inside the model whose activations Grad-CAM weighs (e.g. "features.8");
    # null: the model's own default (an hf transformer: its last block's input norm), else its last nn.Conv2d.
    gradcam_layer: str | None = None

    def check(self, key: str) -> None:
        _at_least(key, "n_queries", self.n_queries, 1)
        _at_least(key, "top_k", self.top_k, 1)  # validate retrieves at least visualize.top_k items
        _at_least(key, "n_ground_truth", self.n_ground_truth, 0)
        layer = self.gradcam_layer
        _require(
            layer is None or re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", layer) is not None,
            f"{key}.gradcam_layer",
            "null or a module path inside the model, e.g. features.8",
            layer,
        )


_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
GROUP_NAME_RULE = f"a name of letters, digits, _ . - (at most {MAX_TAG_LENGTH})"


def is_group_name(name: str) -> bool:
    """Whether ``name`` may name a sweep (logger.sweep.name; the sweep file's stem): :data:`GROUP_NAME_RULE`."""
    return _GROUP_NAME.fullmatch(name) is not None and len(name) <= MAX_TAG_LENGTH


@dataclass(frozen=True)
class SweepGroupConfig:
    """Set by `reprokit sweep` for each trial: the logger groups the trial's run under its sweep."""

    name: str | None = None  # the sweep (its file's stem); null: not part of a sweep
    trial: int | None = None  # the trial number (null with a name: the sweep's promoted run)

    def check(self, key: str) -> None:
        name = self.name
        _require(name is None or is_group_name(name), f"{key}.name", f"null or {GROUP_NAME_RULE}", name)
        _require(self.trial is None or self.trial >= 0, f"{key}.trial", "null or an integer ≥ 0", self.trial)
        _require(name is not None or self.trial is None, f"{key}.trial", f"null while {key}.name is null", self.trial)

    @property
    def active(self) -> bool:
        return self.name is not None


def check_logger_name(name: str, key: str = "logger", names: Iterable[str] = LOGGER_NAMES) -> None:
    """The one check of a logger's name: the schema's, and the mirror registry's (whose ``names`` may
    hold a test's own backends). A retired logger is refused with its reason."""
    if name in RETIRED_LOGGERS:
        raise ConfigError(
            f"{key}.name {name!r} is no longer supported: {RETIRED_LOGGERS[name]}; use one of {', '.join(LOGGER_NAMES)}"
        )
    names = tuple(names)
    if name not in names:
        raise ConfigError(f"{key}.name must be one of {', '.join(names)}; got {name!r}")


@dataclass(frozen=True)
class LoggerConfig:
    name: str = "tensorboard"
    args: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # fail the stage when mirroring fails (default: warn and record)
    timeout_s: float = 60.0  # bound on the whole replay into a backend
    sweep: SweepGroupConfig = field(default_factory=SweepGroupConfig)

    def check(self, key: str) -> None:
        check_logger_name(self.name, key)
        # A thread's join() takes at most threading.TIMEOUT_MAX (~292 years); a day is plenty.
        _require(0 < self.timeout_s <= 86400, f"{key}.timeout_s", "a number of seconds in (0, 86400]", self.timeout_s)


@dataclass(frozen=True)
class TrainerConfig:
    """Passed through to ``lightning.Trainer`` (train) and ``lightning.Fabric`` (validate under DDP).

    Only values both accept and this pipeline runs with: the validate stage relaunches itself
    with ``strategy: ddp`` (Fabric's spawn/fork strategies need a function to launch), and
    ``16-true`` makes the triplet loss's distances underflow to NaN at the first step.
    The defaults run on a laptop CPU.
    """

    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Literal["32-true", "64-true", "16-mixed", "bf16-mixed", "bf16-true"] = "32-true"
    default_root_dir: str = RunsDir().train.root.as_posix()
    accumulate_grad_batches: int = 1  # optimiser steps every n batches (their gradients summed)
    gradient_clip_val: float | None = None  # null: no clipping
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"

    def check(self, key: str) -> None:
        _at_least(key, "accumulate_grad_batches", self.accumulate_grad_batches, 1)
        clip = self.gradient_clip_val
        _require(clip is None or clip > 0, f"{key}.gradient_clip_val", "null or a number > 0", clip)
        # Lightning builds a list with one entry per device (and a process per device on CPU).
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            _require(1 <= value <= MAX_DEVICES, f"{key}.{name}", f"an integer in [1, {MAX_DEVICES}]", value)
        _path(key, "default_root_dir", self.default_root_dir, nullable=False)


def tune_label_count(n_train_labels: int, fraction: float) -> int:
    """How many of ``n_train_labels`` training labels ``data.tune_fraction`` holds out (0 when it is 0)."""
    return int(round(n_train_labels * fraction)) if fraction > 0 else 0
