"""The embedding LightningModule: a model, a loss (triplet by default), and the loss's statistics logged."""

from __future__ import annotations

import math

import torch

from reprokit.core.config import ModelConfig, TrainConfig
from reprokit.core.errors import ConfigError, ReprokitError, TrainingDivergedError
from reprokit.log.lightning_module import LightningModule
from reprokit.train.losses import build_loss, loss_and_stats
from reprokit.train.models import build_model
from reprokit.train.user_code import reason

__all__ = ["EmbeddingModule"]


class EmbeddingModule(LightningModule):
    def __init__(
        self, model_cfg: ModelConfig, train_cfg: TrainConfig, in_channels: int, image_size: int | None = None
    ) -> None:
        super().__init__()
        self.model = build_model(model_cfg, in_channels, image_size)
        # An nn.Module loss becomes a submodule: its parameters (if any) are trained with the model's.
        self.criterion = build_loss(train_cfg.loss)
        self.train_cfg = train_cfg
        self._loss_where = f"train.loss.name {train_cfg.loss.name!r}"
        # The loss's statistics, in the order it first returned them: metrics.json lists them after "loss".
        self.stat_names: list[str] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, _ = batch
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
            raise ConfigError(f"{self._loss_where}: the loss value does not require grad; it must be computed from the embeddings")
        if not math.isfinite(loss.item()):
            raise TrainingDivergedError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}",
                hint=f"lower train.lr (now {self.train_cfg.lr}); nothing was recorded for this run",
            )
        self.stat_names.extend(k for k in stats if k not in self.stat_names)
        batch_size = len(labels)
        # Per step and averaged per epoch (Lightning suffixes the keys _step/_epoch); under DDP
        # the values are averaged over the ranks so rank zero logs the global numbers once.
        sync = self.trainer.world_size > 1
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        if stats:
            self.log_dict(stats, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay)
