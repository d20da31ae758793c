"""The optimiser and the learning-rate schedule ``train.optimizer`` / ``train.scheduler`` declare.

Parameter groups: the model's trainable parameters (BatchNorm's are left out under
``model.freeze_batchnorm``), then the loss's own (ArcFace's or ProxyAnchor's proxies) with
``train.loss.lr`` when it is set. ``train.lr`` / ``train.weight_decay`` are shorthand for the
optimiser's ``lr`` / ``weight_decay`` arguments.

Warm-up multiplies the learning rate of every group by ``(step + 1) / warmup_steps`` for the first
``warmup_steps`` optimiser steps, around the step only: the schedule itself never sees the factor,
so any ``torch.optim.lr_scheduler`` class (including the chainable ones that read the current rate)
runs exactly as it would without warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reprokit.core.config import TrainConfig
from reprokit.core.errors import ConfigError
from reprokit.train.library import OPTIMIZERS, SCHEDULERS, build
from reprokit.train.user_code import describe

__all__ = ["param_groups", "build_optimizer", "build_scheduler", "warmup_factor", "PLATEAU_MONITOR"]

# ReduceLROnPlateau steps on a value: the training loss's epoch mean (the key Lightning logs it under).
PLATEAU_MONITOR = "loss_epoch"


def param_groups(model: nn.Module, criterion: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: the model's trainable parameters, the loss's own."""
    model_params = [p for p in model.parameters() if p.requires_grad]
    loss_params = [p for p in criterion.parameters() if p.requires_grad] if isinstance(criterion, nn.Module) else []
    if cfg.loss.lr is not None and not loss_params:
        raise ConfigError(
            f"train.loss.lr must be null: train.loss.name {cfg.loss.name!r} has no parameters of its own to train; "
            f"got {cfg.loss.lr!r}",
            hint="remove train.loss.lr, or name a loss with parameters (e.g. pml:ArcFaceLoss)",
        )
    if not model_params and not loss_params:
        raise ConfigError(
            "the model has no trainable parameters (all frozen): there is nothing for train.optimizer to train"
        )
    groups: list[dict[str, Any]] = [{"params": model_params}] if model_params else []
    if loss_params:
        groups.append({"params": loss_params, **({"lr": cfg.loss.lr} if cfg.loss.lr is not None else {})})
    return groups


def optimizer_args(cfg: TrainConfig) -> dict[str, Any]:
    """``train.optimizer.args`` with the ``train.lr`` / ``train.weight_decay`` shorthand filled in."""
    args = dict(cfg.optimizer.args)
    for short in ("lr", "weight_decay"):
        if getattr(cfg, short) is not None:
            args[short] = getattr(cfg, short)
    return args


def build_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    optimizer = build(
        "train.optimizer", cfg.optimizer.name, OPTIMIZERS, optimizer_args(cfg), groups, leading_names="params"
    )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(
            f"train.optimizer.name {cfg.optimizer.name!r} returned {describe(optimizer)}, not a torch.optim.Optimizer",
            hint="a module:callable optimiser is called as build(param_groups, **args) and returns the optimiser",
        )
    return optimizer


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> dict[str, Any] | None:
    """The schedule as Lightning takes it (``{"scheduler", "interval", ...}``), or None for a constant rate."""
    block = cfg.scheduler
    if block is None:
        return None
    scheduler = build("train.scheduler", block.name, SCHEDULERS, block.args, optimizer, leading_names="optimizer")
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if not (plateau or isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)):
        raise ConfigError(
            f"train.scheduler.name {block.name!r} returned {describe(scheduler)}, not a torch.optim.lr_scheduler.LRScheduler",
            hint="a module:callable schedule is called as build(optimizer, **args) and returns the scheduler",
        )
    if plateau and block.interval != "epoch":
        raise ConfigError(
            f"train.scheduler.interval must be 'epoch' for ReduceLROnPlateau (it steps on the epoch's mean loss); "
            f"got {block.interval!r}"
        )
    config: dict[str, Any] = {"scheduler": scheduler, "interval": block.interval, "frequency": 1}
    if plateau:
        config["monitor"] = PLATEAU_MONITOR
    return config


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The factor on the learning rate at optimiser step ``step`` (0-based): linear up to 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps
