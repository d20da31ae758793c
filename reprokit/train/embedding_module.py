"""The embedding LightningModule: a model, a loss (triplet by default), the optimiser and schedule the
config declares, training-batch augmentation, and the loss's statistics and the learning rate logged."""

from __future__ import annotations

import math
from typing import Any

import torch

from reprokit.core.config import ModelConfig, TrainConfig
from reprokit.core.errors import ConfigError, ReprokitError, TrainingDivergedError
from reprokit.log.lightning_module import LightningModule
from reprokit.train.augment import BatchAugmentation
from reprokit.train.losses import build_loss, loss_and_stats
from reprokit.train.models import build_model, probe_model
from reprokit.train.optim import build_optimizer, build_scheduler, param_groups, warmup_factor
from reprokit.train.user_code import reason

__all__ = ["EmbeddingModule"]


class EmbeddingModule(LightningModule):
    """Built eagerly: the model, the loss, the augmentation, and a trial optimiser and schedule on the
    parameters, so that a wrong name or argument in any block stops the stage before a batch is read."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        in_channels: int,
        image_size: int | None = None,
        *,
        classes: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = build_model(model_cfg, in_channels, image_size)
        embedding_size = (
            probe_model(f"model.name {model_cfg.name!r}", self.model, in_channels, image_size) if image_size else None
        )
        # An nn.Module loss becomes a submodule: its parameters (if any) are trained with the model's
        # and saved in the checkpoint that train.resume continues from.
        self.criterion = build_loss(train_cfg.loss, train_cfg.miner, classes=classes, embedding_size=embedding_size)
        self.train_cfg = train_cfg
        self.augment = (
            BatchAugmentation(train_cfg.augment, seed, in_channels, image_size)
            if train_cfg.augment and image_size
            else None
        )
        self._loss_where = f"train.loss.name {train_cfg.loss.name!r}"
        self._warmup = train_cfg.scheduler.warmup_steps if train_cfg.scheduler is not None else 0
        # Where the learning rate is set, for the hint of a diverged run.
        self._lr_key = "train.lr" if train_cfg.lr is not None else "train.optimizer.args.lr"
        self._unscaled: list[float] = []  # the groups' rates while optimizer_step holds them warmed up
        self.configure_optimizers()  # the trial build: thrown away, Lightning asks again in fit()
        # The loss's statistics, in the order it first returned them: metrics.json lists them after "loss".
        self.stat_names: list[str] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, _ = batch
        if self.augment is not None:
            images = self.augment(images, self.current_epoch, batch_idx, self.global_rank)
        embeddings = self(images)
        try:
            output = self.criterion(embeddings, labels)
        except ReprokitError:
            raise
        except Exception as exc:
            what = f"loss(embeddings {list(embeddings.shape)}, labels {list(labels.shape)})"
            raise ConfigError(f"{self._loss_where}: {what} raised {reason(exc)}") from exc
        loss, stats = loss_and_stats(self._loss_where, output, self.criterion)
        if not loss.requires_grad:
            raise ConfigError(
                f"{self._loss_where}: the loss value does not require grad; it must be computed from the embeddings"
            )
        if not math.isfinite(loss.item()):
            raise TrainingDivergedError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}",
                hint=f"lower {self._lr_key} (now {self.learning_rate():.3g}); nothing was recorded for this run",
            )
        self.stat_names.extend(k for k in stats if k not in self.stat_names)
        batch_size = len(labels)
        # Per step and averaged per epoch (Lightning suffixes the keys _step/_epoch); under DDP
        # the values are averaged over the ranks so rank zero logs the global numbers once.
        sync = self.trainer.world_size > 1
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        if stats:
            self.log_dict(stats, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        # The rate this batch's optimiser step uses (the schedule's, times the warm-up): step.tsv's `lr`.
        self.log("lr", self.learning_rate(), on_step=True, on_epoch=False, batch_size=batch_size)
        return loss

    def learning_rate(self) -> float:
        """The model's learning rate at the coming optimiser step, warm-up included."""
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        if not optimizers:
            return float("nan")
        # Inside optimizer_step (Lightning runs the last accumulated batch's training_step in the step's
        # closure) the group holds the scaled rate already: read the schedule's own.
        rate = self._unscaled[0] if self._unscaled else optimizers[0].param_groups[0]["lr"]
        return rate * warmup_factor(self.trainer.global_step, self._warmup)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        factor = warmup_factor(self.trainer.global_step, self._warmup)
        if factor == 1.0:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
            return
        # Scaled around the step only: the schedule keeps computing from its own, unscaled rates.
        self._unscaled = [group["lr"] for group in optimizer.param_groups]
        for group, rate in zip(optimizer.param_groups, self._unscaled):
            group["lr"] = rate * factor
        try:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for group, rate in zip(optimizer.param_groups, self._unscaled):
                group["lr"] = rate
            self._unscaled = []

    def configure_optimizers(self):
        optimizer = build_optimizer(param_groups(self.model, self.criterion, self.train_cfg), self.train_cfg)
        scheduler = build_scheduler(optimizer, self.train_cfg)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
