"""`{name, args}` blocks of the config (``model``, ``train.loss``): a built-in or the user's own callable.

A built-in name has typed args, checked like any section and completed with their defaults (equal
networks, equal configs); "module:callable" (importable from the project root) gets its args as
they are, which must be plain YAML. reprokit.train's registries hold the same built-in names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from reprokit.core.checks import at_least as _at_least
from reprokit.core.checks import non_negative as _non_negative
from reprokit.core.checks import require as _require
from reprokit.core.errors import ConfigError
from reprokit.core.schema import load_dataclass, to_plain

__all__ = [
    "ModelConfig",
    "LossConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "MinerConfig",
    "AugmentConfig",
    "AUTO",
    "MODEL_ARGS",
    "LOSS_ARGS",
    "SimpleCNNArgs",
    "TripletArgs",
]

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
        _require(
            all(c <= MAX_WIDTH for c in self.channels), f"{key}.channels", f"a list of integers {widest}", self.channels
        )
        _require(self.embedding_dim <= MAX_WIDTH, f"{key}.embedding_dim", f"an integer {widest}", self.embedding_dim)


@dataclass(frozen=True)
class HFArgs:
    """``model.args`` of the built-in ``hf``: a Hugging Face ``transformers`` vision model saved in a folder.

    ``path`` is the folder ``save_pretrained`` or ``hf download NAME --local-dir PATH`` wrote (config.json and
    the weights); it is read offline, never fetched. ``pooling``: ``cls`` the first (class) token, ``mean`` the
    mean of the patch tokens (of the feature map for a convolutional model), ``pooler`` the model's own
    ``pooler_output``. ``input_norm``: the mean/std images are normalised with before the model sees them
    (they arrive in [0, 1]): ``auto`` the folder's preprocessor_config.json, else ImageNet's; ``imagenet``;
    ``none`` (the model sees [0, 1]).
    """

    path: str | None = None
    pooling: Literal["cls", "mean", "pooler"] = "cls"
    input_norm: Literal["auto", "imagenet", "none"] = "auto"

    def check(self, key: str) -> None:
        _require(
            self.path is not None and self.path.strip() != "",
            f"{key}.path",
            "the folder of a transformers model (config.json and its weights), e.g. weights/dinov2-small",
            self.path,
        )


@dataclass(frozen=True)
class TripletArgs:
    """``train.loss.args`` of the built-in ``triplet``: the margin, batch-all or batch-hard mining."""

    margin: float = 0.5
    miner: Literal["all", "hard"] = "all"

    def check(self, key: str) -> None:
        _non_negative(key, "margin", self.margin)


MODEL_ARGS: dict[str, type] = {"simple_cnn": SimpleCNNArgs, "hf": HFArgs}
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
        _require(
            _plain_value(v), f"{key}.args.{k}", "plain YAML (numbers, strings, booleans, null, lists, mappings)", v
        )


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
class _Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # a built-in's: its defaults filled in
    builtins: ClassVar[dict[str, type]] = {}

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _complete(self.name, self.args, self.builtins))  # frozen: set once, here

    def check(self, key: str) -> None:
        _check_named(key, self.name, self.args, self.builtins)

    def resolved_args(self) -> dict[str, Any]:
        """A copy of ``args``, a built-in's with its defaults filled in: what the model or loss is built with."""
        return dict(self.args)


WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")  # model.weights: a state dict in one of these


@dataclass(frozen=True)
class HeadConfig:
    """``model.head``: on top of any backbone, a linear projection to ``dim`` (null: none), then L2 normalisation."""

    dim: int | None = None
    normalize: bool = True

    def check(self, key: str) -> None:
        if self.dim is not None:
            _require(1 <= self.dim <= MAX_WIDTH, f"{key}.dim", f"null or an integer in [1, {MAX_WIDTH}]", self.dim)


@dataclass(frozen=True)
class ModelConfig(_Component):
    """The embedding network, built as ``build(in_channels=..., **args)`` (in_channels: 1 for
    data.image_mode L, 3 for RGB); it maps an image batch [N, C, H, W] to embeddings [N, D].

    ``head`` (null: none, the network as built) adds a projection and/or L2 normalisation on top;
    ``weights`` is a state-dict file loaded, strictly, into the whole network as built (head included);
    ``freeze_batchnorm`` keeps every BatchNorm layer in evaluation mode with its parameters frozen.
    """

    name: str = "simple_cnn"  # a built-in (simple_cnn, hf) or "module:callable"
    args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    head: HeadConfig | None = None
    freeze_batchnorm: bool = False
    builtins: ClassVar[dict[str, type]] = MODEL_ARGS

    def check(self, key: str) -> None:
        super().check(key)
        w = self.weights
        _require(
            w is None or (w.strip() != "" and w.lower().endswith(WEIGHTS_SUFFIXES)),
            f"{key}.weights",
            f"null or a state-dict file ({', '.join(WEIGHTS_SUFFIXES)})",
            w,
        )

    def architecture(self) -> dict[str, Any]:
        """What shapes the network's state dict: the name, the args (defaults filled in) and the head
        where there is one. A checkpoint records it to rebuild the network (its weights are its own)."""
        spec: dict[str, Any] = {"name": self.name, "args": self.resolved_args()}
        if self.head is not None:
            spec["head"] = to_plain(self.head)
        return spec


@dataclass(frozen=True)
class LossConfig(_Component):
    """The training loss, built as ``build(**args)``; called as ``loss(embeddings, labels)``, it
    returns the loss, or (loss, {name: scalar}) statistics logged beside it."""

    name: str = "triplet"  # a built-in (triplet), "pml:<Class>" or "module:callable"
    args: dict[str, Any] = field(default_factory=dict)
    # The learning rate of the loss's own parameters (ArcFace's, ProxyAnchor's proxies): a parameter
    # group of their own; null: the optimiser's learning rate.
    lr: float | None = None
    builtins: ClassVar[dict[str, type]] = LOSS_ARGS

    def check(self, key: str) -> None:
        named = self.name in self.builtins or CALLABLE_NAME.fullmatch(self.name) is not None
        allowed = (
            f"one of {', '.join(self.builtins)}, 'pml:<Class>' (pytorch-metric-learning's losses, e.g. "
            "pml:ArcFaceLoss) or 'module:callable' (your own, e.g. 'my_losses:build')"
        )
        _require(named, f"{key}.name", allowed, self.name)
        super().check(key)
        _require(self.lr is None or self.lr > 0, f"{key}.lr", "null or a number > 0", self.lr)
        check_auto_args(key, self.args)


# ``auto`` in a loss's (or miner's) args is filled at build time from what the run knows.
AUTO = "auto"
AUTO_FILLED = {
    "num_classes": "the number of training labels",
    "embedding_size": "the size of the model's embeddings (its probe)",
}


def check_auto_args(key: str, args: dict[str, Any]) -> None:
    for name, value in args.items():
        if value == AUTO and name not in AUTO_FILLED:
            filled = ", ".join(f"{k} ({v})" for k, v in AUTO_FILLED.items())
            raise ConfigError(
                f"{key}.args.{name} must not be 'auto': only {filled} are filled in; got 'auto'",
                hint=f"write a value for {key}.args.{name}",
            )


@dataclass(frozen=True)
class LibraryBlock:
    """A ``{name, args}`` block naming a class of a library (``torch.optim``, ``kornia.augmentation``,
    ``pml:<Class>``) or the user's ``module:callable``. The name is resolved where the block is built
    (reprokit.train.library), so that reading the config never imports the library."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def check(self, key: str) -> None:
        ok = re.fullmatch(r"[A-Za-z_]\w*", self.name) is not None or CALLABLE_NAME.fullmatch(self.name) is not None
        _require(ok, f"{key}.name", "a class name (e.g. AdamW) or 'module:callable'", self.name)
        for k, v in self.args.items():
            _require(
                _plain_value(v), f"{key}.args.{k}", "plain YAML (numbers, strings, booleans, null, lists, mappings)", v
            )


@dataclass(frozen=True)
class OptimizerConfig(LibraryBlock):
    """``train.optimizer``: a class of ``torch.optim`` or ``module:callable``, built as
    ``Class(param_groups, **args)``. ``train.lr``/``train.weight_decay`` fill ``lr``/``weight_decay``."""

    name: str = "Adam"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerConfig(LibraryBlock):
    """``train.scheduler``: a class of ``torch.optim.lr_scheduler`` or ``module:callable``, built as
    ``Class(optimizer, **args)`` and stepped every ``interval`` (an epoch or an optimiser step); the
    first ``warmup_steps`` optimiser steps scale its learning rate linearly up from 1/warmup_steps."""

    name: str = "CosineAnnealingLR"
    args: dict[str, Any] = field(default_factory=dict)
    interval: Literal["epoch", "step"] = "epoch"
    warmup_steps: int = 0

    def check(self, key: str) -> None:
        super().check(key)
        _at_least(key, "warmup_steps", self.warmup_steps, 0)


@dataclass(frozen=True)
class MinerConfig(LibraryBlock):
    """``train.miner``: ``pml:<Class>`` (pytorch_metric_learning.miners) or ``module:callable``, called
    as ``miner(embeddings, labels)``; its tuples go to a ``pml:`` loss as ``indices_tuple``."""

    name: str = "pml:MultiSimilarityMiner"
    args: dict[str, Any] = field(default_factory=dict)

    def check(self, key: str) -> None:
        super().check(key)
        check_auto_args(key, self.args)


@dataclass(frozen=True)
class AugmentConfig(LibraryBlock):
    """One entry of ``train.augment``: a class of ``kornia.augmentation`` or ``module:callable``, built as
    ``Class(**args)`` and applied to each training batch [N, C, H, W] (values in [0, 1]) on its device."""

    name: str = "RandomHorizontalFlip"
    args: dict[str, Any] = field(default_factory=dict)
