"""The params.yaml schema: typed, frozen, strict.

``load_config("params.yaml")`` returns a :class:`Config`. Each section is a frozen dataclass;
unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with a one-line
message naming the key, the value received and what is allowed. Stages read only the
sections listed under their ``params`` in ``dvc.yaml``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from reprokit.core.errors import ConfigError
from reprokit.core.metric_names import EXTRA_METRICS, metric_names, unknown_extra_metrics
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


N_DIGITS = 1797  # source images in scikit-learn's digits
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range is [0, 2**32 - 1]
# Batch-all mining holds a [B, B, B] triplet mask: about 1.2 GiB at B = 1024, 10 GiB at 2048.
MAX_BATCH_ALL = 2048
MAX_TAG_LENGTH = 64
MAX_DEVICES = 1024


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _require(ok: bool, key: str, allowed: str, value: Any, hint: str | None = None) -> None:
    """``ConfigError("<key> must be <allowed>; got <value>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key} must be {allowed}; got {_shown(value)!r}", hint=hint)


def _at_least(key: str, name: str, value: int, low: int) -> None:
    _require(value >= low, f"{key}.{name}", f"an integer ≥ {low}", value)


def _non_negative(key: str, name: str, value: float) -> None:
    _require(value >= 0, f"{key}.{name}", "a number ≥ 0", value)


def _greater_than_zero(key: str, name: str, value: float) -> None:
    _require(value > 0, f"{key}.{name}", "a number > 0", value)


def _ks(key: str, name: str, values: tuple[int, ...], non_empty: bool) -> None:
    what = ("a non-empty list" if non_empty else "a list") + " of distinct integers ≥ 1"
    ok = (bool(values) or not non_empty) and all(k >= 1 for k in values) and len(set(values)) == len(values)
    _require(ok, f"{key}.{name}", what, values)


def _path(key: str, name: str, value: str | None, nullable: bool) -> None:
    what = "null or a non-empty path" if nullable else "a non-empty path"
    _require(value is None or value.strip() != "", f"{key}.{name}", what, value)


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
            f"a fraction that leaves both splits labels: round({self.n_labels()} × fraction) in "
            f"[1, {self.n_labels() - 1}], here {n_val}",
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


    def check(self, key: str) -> None:
        _path(key, "dataframe", self.dataframe, nullable=True)
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


# `{name, args}` blocks (model, train.loss): a built-in name, whose args are typed and checked like
# any section, or "module:callable" of the user's own (importable from the project root), whose
# args are passed to it as they are. reprokit.train's registries hold the same built-in names.
MAX_WIDTH = 2**16  # simple_cnn's channels and embedding_dim
CALLABLE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class SimpleCNNArgs:
    """``model.args`` of the built-in ``simple_cnn``."""

    channels: tuple[int, ...] = (16, 32, 64)
    embedding_dim: int = 64

    def check(self, key: str) -> None:
        ok = bool(self.channels) and all(c >= 1 for c in self.channels)
        _require(ok, f"{key}.channels", "a non-empty list of integers ≥ 1", self.channels)
        _at_least(key, "embedding_dim", self.embedding_dim, 1)
        # Beyond this a layer does not fit in memory (and past 2**63 torch cannot even size it).
        widest = f"at most {MAX_WIDTH} (a layer's width)"
        _require(all(c <= MAX_WIDTH for c in self.channels), f"{key}.channels", f"a list of integers {widest}", self.channels)
        _require(self.embedding_dim <= MAX_WIDTH, f"{key}.embedding_dim", f"an integer {widest}", self.embedding_dim)


@dataclass(frozen=True)
class TripletArgs:
    """``train.loss.args`` of the built-in ``triplet``: the margin, batch-all or batch-hard mining."""

    margin: float = 0.5
    miner: Literal["all", "hard"] = "all"

    def check(self, key: str) -> None:
        _non_negative(key, "margin", self.margin)


MODEL_ARGS: dict[str, type] = {"simple_cnn": SimpleCNNArgs}
LOSS_ARGS: dict[str, type] = {"triplet": TripletArgs}


def _plain_value(value: Any) -> bool:
    """Plain YAML: what a checkpoint read with ``torch.load(weights_only=True)`` can hold."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_value(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _check_named(key: str, name: str, args: dict[str, Any], builtins: dict[str, type]) -> None:
    if name in builtins:
        load_dataclass(builtins[name], args, f"{key}.args")
        return
    allowed = f"one of {', '.join(builtins)} or 'module:callable' (your own, e.g. 'my_models:build')"
    _require(CALLABLE_NAME.fullmatch(name) is not None, f"{key}.name", allowed, name)
    for k, v in args.items():
        _require(_plain_value(v), f"{key}.args.{k}", "plain YAML (numbers, strings, booleans, null, lists, mappings)", v)


def _complete(name: str, args: dict[str, Any], builtins: dict[str, type]) -> dict[str, Any]:
    """A built-in's args with its defaults filled in (equal networks, equal configs); others as given.
    Invalid args stay as they are: ``check`` then reports them under their key."""
    if name not in builtins:
        return args
    try:
        return to_plain(load_dataclass(builtins[name], args))
    except ConfigError:
        return args


@dataclass(frozen=True)
class ModelConfig:
    """The embedding network, built as ``build(in_channels=..., **args)`` (in_channels: 1 for
    data.image_mode L, 3 for RGB); it maps an image batch [N, C, H, W] to embeddings [N, D]."""

    name: str = "simple_cnn"  # a built-in (simple_cnn) or "module:callable"
    args: dict[str, Any] = field(default_factory=dict)  # a built-in's: its defaults filled in

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _complete(self.name, self.args, MODEL_ARGS))  # frozen: set once, here

    def check(self, key: str) -> None:
        _check_named(key, self.name, self.args, MODEL_ARGS)

    def resolved_args(self) -> dict[str, Any]:
        """A copy of ``args``, a built-in's with its defaults filled in: what the model or loss is built with."""
        return dict(self.args)


@dataclass(frozen=True)
class LossConfig:
    """The training loss, built as ``build(**args)``; called as ``loss(embeddings, labels)``, it
    returns the loss, or (loss, {name: scalar}) statistics logged beside it."""

    name: str = "triplet"  # a built-in (triplet) or "module:callable"
    args: dict[str, Any] = field(default_factory=dict)  # a built-in's: its defaults filled in

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _complete(self.name, self.args, LOSS_ARGS))  # frozen: set once, here

    def check(self, key: str) -> None:
        _check_named(key, self.name, self.args, LOSS_ARGS)

    def resolved_args(self) -> dict[str, Any]:
        """A copy of ``args``, a built-in's with its defaults filled in: what the model or loss is built with."""
        return dict(self.args)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    n_labels: int = 32  # labels per batch
    n_instances: int = 4  # instances of each label per batch
    lr: float = 3e-3
    weight_decay: float = 0.0
    loss: LossConfig = field(default_factory=LossConfig)
    num_workers: int = 0
    resume: bool = False
    log_every_n_steps: int = 1

    def check(self, key: str) -> None:
        _at_least(key, "epochs", self.epochs, 1)
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
        _greater_than_zero(key, "lr", self.lr)
        _non_negative(key, "weight_decay", self.weight_decay)
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

    def check(self, key: str) -> None:
        _at_least(key, "batch_size", self.batch_size, 1)
        _at_least(key, "memory_budget_mb", self.memory_budget_mb, 1)
        # cmc@k always: the validate stage draws the CMC curve and retrieves max(cmc_top_k) items.
        _ks(key, "cmc_top_k", self.cmc_top_k, non_empty=True)
        _ks(key, "precision_top_k", self.precision_top_k, non_empty=False)
        _ks(key, "map_top_k", self.map_top_k, non_empty=False)
        extra = self.extra_metrics
        allowed = f"a list of distinct names from {', '.join(EXTRA_METRICS)}"
        _require(not unknown_extra_metrics(extra) and len(set(extra)) == len(extra), f"{key}.extra_metrics", allowed, extra)

    def metric_names(self) -> list[str]:
        """Every metric the validate stage computes, in the order of its files."""
        return metric_names(self.cmc_top_k, self.precision_top_k, self.map_top_k, self.extra_metrics)


@dataclass(frozen=True)
class VisualizeConfig:
    metric: str = "map@5"  # rank queries by this per-query metric, worst first
    n_queries: int = 6
    top_k: int = 5
    n_ground_truth: int = 2

    def check(self, key: str) -> None:
        _at_least(key, "n_queries", self.n_queries, 1)
        _at_least(key, "top_k", self.top_k, 1)  # validate retrieves at least visualize.top_k items
        _at_least(key, "n_ground_truth", self.n_ground_truth, 0)


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
    default_root_dir: str = "runs/train"

    def check(self, key: str) -> None:
        # Lightning builds a list with one entry per device (and a process per device on CPU).
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            _require(1 <= value <= MAX_DEVICES, f"{key}.{name}", f"an integer in [1, {MAX_DEVICES}]", value)
        _path(key, "default_root_dir", self.default_root_dir, nullable=False)


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
            # W&B cuts tags at 64 characters; key/value backends join the tags with commas.
            _require(ok, f"tags[{i}]", f"a non-empty string of at most {MAX_TAG_LENGTH} characters without commas", tag)
        self._check_visualize_metric()
        if self.model.name == "simple_cnn":
            blocks = len(self.model.args["channels"])
            _require(
                self.data.image_size >= 2**blocks,
                "data.image_size",
                f"≥ {2**blocks} with {blocks} entries in model.args.channels (each conv block halves the image)",
                self.data.image_size,
            )
        digits, t = self.data.digits, self.train
        if self.data.dataframe_path() == Path(digits.output) / "df.csv":  # the embedded digits: counts known
            n_train, _ = digits.split_sizes()
            _require(
                t.n_labels <= n_train,
                "train.n_labels",
                f"≤ {n_train}, the training labels data.digits generates "
                f"(n_source {digits.n_labels()}, validation_fraction {digits.validation_fraction})",
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

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not "last wins")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found", hint="run from the project root")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    return config_from_dict({} if data is None else data)


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
