"""The embedding LightningModule: a model, triplet loss with a miner, and its statistics logged."""

from __future__ import annotations

import math

import torch

from reprokit.core.config import ModelConfig, TrainConfig
from reprokit.core.errors import TrainingDivergedError
from reprokit.log.lightning_module import LightningModule
from reprokit.train.losses import triplet_loss
from reprokit.train.models import build_model

__all__ = ["EmbeddingModule", "LOSS_STATS"]

LOSS_STATS = ("loss", "pos_dist", "neg_dist", "active_tri")


class EmbeddingModule(LightningModule):
    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, in_channels: int) -> None:
        super().__init__()
        self.model = build_model(model_cfg, in_channels)
        self.train_cfg = train_cfg

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, _ = batch
        loss, stats = triplet_loss(self(images), labels, self.train_cfg.margin, self.train_cfg.miner)
        if not math.isfinite(loss.item()):
            raise TrainingDivergedError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}",
                hint=f"lower train.lr (now {self.train_cfg.lr}); nothing was recorded for this run",
            )
        batch_size = len(labels)
        # Per step and averaged per epoch (Lightning suffixes the keys _step/_epoch); under DDP
        # the values are averaged over the ranks so rank zero logs the global numbers once.
        sync = self.trainer.world_size > 1
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        self.log_dict(stats, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay)
