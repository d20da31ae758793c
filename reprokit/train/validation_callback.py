"""The callback that validates while training: every ``train.validate_every_n_epochs`` epochs (and after the last one).

The train loop is given a ``validator``: a function that embeds the validation split with the
model and returns the overall retrieval metrics, built by the train stage from the validate stage's
own engine (``reprokit.evaluate``), so the numbers are validate's, at that epoch. This callback
decides when to call it, and with the model in evaluation mode, under no autograd, with every RNG
state put back afterwards: validating never changes what training does next (the same loss curve
and weights with or without it). The values are the epoch's row of ``plots/validation.tsv``,
``val/<metric>`` at full precision (not through ``self.log``, which would store float32), and reach
the logger live with it.

With ``train.checkpoint: best`` it keeps, in memory, the weights of the epoch with the highest
``train.monitor`` (the first such epoch on a tie); the state travels in Lightning's checkpoint, so
``train.resume`` keeps it. Hooks (``on_validation``) are called on rank zero with ``(epoch,
metrics)`` after each validation; one that returns True stops training after this epoch (the
decision is shared by every DDP rank).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from reprokit.log.run_logger import RunFolderLogger

__all__ = ["EpochValidation", "Validator", "ValidationHook", "preserved_rng", "evaluating"]

# model -> overall metrics ({"cmc@1": 0.7, ...}); called on every rank under DDP (it gathers itself).
Validator = Callable[[nn.Module], Mapping[str, float]]
# (epoch as plots/epoch.tsv counts it, from 0; overall metrics) -> True to stop training after this epoch.
ValidationHook = Callable[[int, Mapping[str, float]], "bool | None"]


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's, numpy's and torch's (CPU and every initialised CUDA device) RNG states, put back on exit:
    a DataLoader iterator draws its base seed from torch's global RNG, even without workers."""
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode (BatchNorm's running statistics used, never updated), each submodule's
    mode put back on exit."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


@torch.no_grad()
def share_rank_zeros_buffers(model: nn.Module) -> None:
    """Under DDP, give every rank rank zero's buffers (BatchNorm's running statistics): each rank
    updated its own with its own batches since DDP last broadcast them (at a forward pass), so
    without this the ranks would embed their shares of the validation split with different models.
    DDP broadcasts them again at the next training step anyway: training is not changed by it."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


class EpochValidation(pl.Callback):
    def __init__(
        self,
        validator: Validator,
        every_n_epochs: int,
        max_epochs: int,
        monitor: str | None = None,
        hooks: Sequence[ValidationHook] = (),
    ) -> None:
        self.validator = validator
        self.every_n_epochs = every_n_epochs
        self.max_epochs = max_epochs
        self.monitor = monitor  # None: checkpoint last, nothing to keep
        self.hooks = list(hooks)
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped_at: int | None = None

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every_n_epochs == 0 or epoch + 1 == self.max_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.due(epoch):
            return
        model = cast(nn.Module, pl_module.model)  # reprokit's module; nn.Module's __getattr__ types it Tensor | Module
        share_rank_zeros_buffers(model)  # the model rank zero saves is the one every rank scores
        with preserved_rng(), evaluating(model), torch.inference_mode():
            metrics = {k: float(v) for k, v in self.validator(model).items()}
        cast("RunFolderLogger", trainer.logger).log_epoch_values(epoch, {f"val/{k}": v for k, v in metrics.items()})
        if self.monitor is not None:
            value = metrics[self.monitor]
            if self.best_value is None or value > self.best_value:
                self.best_epoch, self.best_value = epoch, value
                self.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        stop = bool(trainer.is_global_zero and any([bool(hook(epoch, metrics)) for hook in self.hooks]))
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True
            self.stopped_at = epoch

    def best(self) -> dict[str, float | int] | None:
        """``{"epoch": e, "<monitor>": value}`` of the kept epoch (None with checkpoint: last)."""
        if self.monitor is None or self.best_epoch is None or self.best_value is None:  # set together
            return None
        return {"epoch": self.best_epoch, self.monitor: self.best_value}

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "best_value": self.best_value, "best_weights": self.best_weights}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_epoch = state_dict.get("best_epoch")
        self.best_value = state_dict.get("best_value")
        self.best_weights = state_dict.get("best_weights")
