"""``reprokit.LightningModule``: Lightning's module whose ``self.log`` takes images and text too.

A drop-in base class: change ``lightning.pytorch.LightningModule`` to ``reprokit.LightningModule``
and nothing else. ``self.log`` / ``self.log_dict`` then accept

- scalars, exactly as Lightning does (``prog_bar``, ``on_step``/``on_epoch``, ``sync_dist``), plus any
  callable ``reduce_fx`` (``torch.median``, a quantile...), where Lightning accepts only
  min/max/mean/sum: the values of the epoch are gathered and reduced once by that callable;
- images: HW, CHW, HWC or NCHW tensors/arrays (a batch becomes a grid), floats in [0, 1] or
  integers in [0, 255];
- text: a ``str``.

Images and texts go to every attached logger that can hold them (see ``reprokit.media_sinks``);
for a logger that cannot (CSV), they are saved as files under the run folder and one warning
says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from reprokit.media import LogValueError, is_image_like, to_image_hwc
from reprokit.media_sinks import send_image, send_text

__all__ = ["LightningModule"]

_BUILTIN_REDUCTIONS = {torch.mean, torch.max, torch.min, torch.sum}
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

    def __init__(self, fx: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fx = fx
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, value: Any) -> None:
        self.values.append(torch.as_tensor(value, dtype=torch.float32, device=self.device).reshape(-1))

    def compute(self) -> torch.Tensor:
        out = self.fx(dim_zero_cat(self.values))
        # torch.max/min/median with a dim return (values, indices); keep the values.
        return torch.as_tensor(out[0] if isinstance(out, tuple) else out, dtype=torch.float32)


class LightningModule(pl.LightningModule):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reprokit_reducers = nn.ModuleDict()
        self.epoch_level_keys: set[str] = set()  # read by reprokit's run-folder logger

    # -- logging ----------------------------------------------------------------------
    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(value, str):
            self._log_media(name, value, send_text)
            return
        if is_image_like(value):
            self._log_media(name, to_image_hwc(name, value), send_image)
            return
        if isinstance(value, (torch.Tensor, np.ndarray)) and value.size != () and np.prod(tuple(value.shape)) != 1:
            raise LogValueError(
                f"self.log({name!r}, ...): got shape {tuple(value.shape)}, dtype {value.dtype}; a scalar must have "
                "exactly one element, an image must be HW, CHW, HWC or NCHW with both sides >= 2"
            )
        on_step, on_epoch = self._levels(kwargs.get("on_step"), kwargs.get("on_epoch"))
        if on_epoch and not on_step:
            self.epoch_level_keys.add(name)
        reduce_fx = kwargs.get("reduce_fx", "mean")
        if callable(reduce_fx) and reduce_fx not in _BUILTIN_REDUCTIONS:
            value, kwargs = self._custom_reduction(name, value, reduce_fx, kwargs)
        super().log(name, value, *args, **kwargs)

    def log_dict(self, dictionary: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        # Lightning's log_dict would reject images/text; route each entry through self.log.
        for key, value in dictionary.items():
            self.log(key, value, *args, **kwargs)

    # -- helpers ----------------------------------------------------------------------
    def _levels(self, on_step: bool | None, on_epoch: bool | None) -> tuple[bool, bool]:
        in_step = getattr(self, "_current_fx_name", None) in _STEP_HOOKS
        return (in_step if on_step is None else on_step, (not in_step) if on_epoch is None else on_epoch)

    def _custom_reduction(self, name: str, value: Any, fx: Callable, kwargs: dict) -> tuple[Metric, dict]:
        attr = re.sub(r"\W", "_", name)
        if attr not in self._reprokit_reducers:
            self._reprokit_reducers[attr] = _ReduceWith(fx).to(self.device)
        metric = self._reprokit_reducers[attr]
        metric.update(value)
        kwargs = {**kwargs, "metric_attribute": f"_reprokit_reducers.{attr}"}
        kwargs.pop("reduce_fx", None)
        return metric, kwargs

    def _log_media(self, name: str, payload: Any, send: Callable) -> None:
        trainer = self._trainer
        if trainer is None or not trainer.is_global_zero:
            return
        step = trainer.global_step
        for logger in trainer.loggers:
            send(logger, name, payload, step, fallback_dir=trainer.default_root_dir)
