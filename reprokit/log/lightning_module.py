"""``reprokit.LightningModule``: Lightning's module whose ``self.log`` takes images and text too.

A drop-in base class: change ``lightning.pytorch.LightningModule`` to ``reprokit.LightningModule``
and nothing else. ``self.log`` / ``self.log_dict`` then accept

- scalars, exactly as Lightning does (``prog_bar``, ``on_step``/``on_epoch``, ``sync_dist``), plus any
  callable ``reduce_fx`` (``torch.median``, a quantile...), where Lightning accepts only
  min/max/mean/sum: the values of the epoch are gathered and reduced once by that callable;
- images: HW, CHW, HWC or NCHW tensors/arrays (a batch becomes a grid), floats in [0, 1] or
  integers in [0, 255];
- text: a ``str``.

Images and texts go to every attached logger that can hold them (see ``reprokit.log.media_sinks``);
for a logger that cannot (CSV), they are saved as files under the run folder and one warning
says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from reprokit.log.media import LogValueError, is_image_like, to_image_hwc
from reprokit.log.media_sinks import send_image, send_text

__all__ = ["LightningModule"]

_BUILTIN_REDUCTIONS = {torch.mean, torch.max, torch.min, torch.sum}
_NUMBERS = {float, int}
# Hooks inside a training batch, where Lightning's default is on_step=True, on_epoch=False.
_STEP_HOOKS = {
    "training_step",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "optimizer_step",
}


class _ReduceWith(Metric):
    """Collects every value of an epoch and reduces them with an arbitrary callable."""

    full_state_update = False
    values: list[torch.Tensor]  # a metric state (added in __init__)

    def __init__(self, fx: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fx = fx
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, value: Any) -> None:
        self.values.append(torch.as_tensor(value, dtype=torch.float32, device=self.device).detach().reshape(-1))

    def compute(self) -> torch.Tensor:
        out = self.fx(dim_zero_cat(self.values))
        # torch.max/min/median with a dim return (values, indices); keep the values.
        return torch.as_tensor(out[0] if isinstance(out, tuple) else out, dtype=torch.float32)


class LightningModule(pl.LightningModule):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A plain dict, not an nn.ModuleDict: registered as a submodule it showed in the user's
        # model summary and print(model). Lightning needs no registration: it gets each Metric
        # object itself and its name (metric_attribute) with every self.log call, and resets it
        # each epoch through that object. The states hold no checkpoint entries either way
        # (add_state's default is persistent=False); the device is kept in step in _custom_reduction.
        self._reprokit_reducers: dict[str, _ReduceWith] = {}
        self.epoch_level_keys: set[str] = set()  # read by reprokit's run-folder logger

    # -- logging ----------------------------------------------------------------------
    # Lightning's own signature, so positional and keyword calls mean what they mean there.
    # ``log_dict`` is not overridden: Lightning's loops over the entries calling ``self.log``.
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable[[Any], Any] = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any | None = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        # Fast path: plain numbers and 0-d tensors (nearly every call) skip the media checks.
        kind = type(value)
        if not (kind in _NUMBERS or (kind is torch.Tensor and value.ndim == 0)):
            if isinstance(value, str):
                self._log_media(name, value, send_text)
                return
            if is_image_like(value):
                self._log_media(name, to_image_hwc(name, value), send_image)
                return
            if isinstance(value, (torch.Tensor, np.ndarray)):
                if math.prod(value.shape) != 1:
                    raise LogValueError(
                        f"self.log({name!r}, ...): got shape {tuple(value.shape)}, dtype {value.dtype}; a scalar "
                        "must have exactly one element, an image must be HW, CHW, HWC or NCHW with both sides >= 2"
                    )
                if isinstance(value, np.ndarray):  # Lightning takes numbers and tensors, not arrays
                    value = value.item()
        step_level, epoch_level = self._levels(on_step, on_epoch)
        if epoch_level and not step_level:
            self.epoch_level_keys.add(name)
        if callable(reduce_fx) and reduce_fx not in _BUILTIN_REDUCTIONS:
            # Lightning accepts only min/max/mean/sum; a Metric it will compute and reset each epoch can do any.
            value, metric_attribute = self._custom_reduction(name, value, reduce_fx, step_level)
            reduce_fx = "mean"  # ignored by Lightning for a Metric
        super().log(
            name,
            value,
            prog_bar=prog_bar,
            logger=logger,
            on_step=on_step,
            on_epoch=on_epoch,
            reduce_fx=reduce_fx,
            enable_graph=enable_graph,
            sync_dist=sync_dist,
            sync_dist_group=sync_dist_group,
            add_dataloader_idx=add_dataloader_idx,
            batch_size=batch_size,
            metric_attribute=metric_attribute,
            rank_zero_only=rank_zero_only,
        )

    # -- helpers ----------------------------------------------------------------------
    def _levels(self, on_step: bool | None, on_epoch: bool | None) -> tuple[bool, bool]:
        """Lightning's defaults: per step inside a training batch, per epoch everywhere else."""
        in_step = getattr(self, "_current_fx_name", None) in _STEP_HOOKS
        return (in_step if on_step is None else on_step, (not in_step) if on_epoch is None else on_epoch)

    def _custom_reduction(self, name: str, value: Any, fx: Callable, on_step: bool) -> tuple[Metric, str]:
        """Feed ``value`` to a per-key Metric reducing with ``fx``; return it and its attribute path."""
        attr = re.sub(r"\W", "_", name)
        if attr not in self._reprokit_reducers:
            self._reprokit_reducers[attr] = _ReduceWith(fx)
        metric = self._reprokit_reducers[attr]
        if metric.device != self.device:  # unregistered, so not moved along by module.to(...)
            metric.to(self.device)
        if on_step:
            metric(value)  # forward: Lightning logs its per-step result (the value itself) as the step value
        else:
            metric.update(value)
        return metric, f"_reprokit_reducers.{attr}"

    def _log_media(self, name: str, payload: Any, send: Callable) -> None:
        trainer = self._trainer
        # Like Lightning's scalars: nothing is logged by the sanity check or off rank zero.
        if trainer is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        step = trainer.global_step
        for logger in trainer.loggers:
            send(logger, name, payload, step, fallback_dir=trainer.default_root_dir)
