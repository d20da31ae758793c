"""Training an embedding model on the train split and writing the train stage's run folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch

from reprokit.checkpoint import save_model
from reprokit.config import Config
from reprokit.fileio import write_json
from reprokit.images import ImageTensorDataset, collate_batch, load_images
from reprokit.module import LOSS_STATS, EmbeddingModule
from reprokit.run_logger import RunFolderLogger
from reprokit.sampler import LabelBalancedBatchSampler

__all__ = ["train", "new_run_identity"]


def new_run_identity(exp_name: str | None) -> dict[str, str]:
    """One id per pipeline run: later stages and the logger mirror attach to it."""
    run_id = uuid.uuid4().hex
    return {"run_id": run_id, "run_name": f"{exp_name or 'run'}-{run_id[:8]}"}


def make_trainer(cfg: Config, logger: RunFolderLogger) -> pl.Trainer:
    t = cfg.trainer
    return pl.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        default_root_dir=t.default_root_dir,
        deterministic=True,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=cfg.train.log_every_n_steps,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def train(cfg: Config, df: pd.DataFrame, paths: list[Path], out_dir: Path) -> dict[str, float]:
    """Fit the model; write plots/, model.ckpt and return the final-epoch loss statistics."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    is_train = (df["split"] == "train").to_numpy()
    train_df = df[is_train].reset_index(drop=True)
    train_paths = [p for p, keep in zip(paths, is_train) if keep]
    images = load_images(train_df, train_paths, cfg.data.image_size, cfg.data.image_mode)
    labels = torch.tensor(train_df["label"].to_numpy(), dtype=torch.long)

    sampler = LabelBalancedBatchSampler(labels.numpy(), cfg.train.n_labels, cfg.train.n_instances, cfg.seed)
    loader = torch.utils.data.DataLoader(
        ImageTensorDataset(images, labels),
        batch_sampler=sampler,
        collate_fn=collate_batch,
        num_workers=cfg.train.num_workers,
        persistent_workers=cfg.train.num_workers > 0,
    )
    module = EmbeddingModule(cfg.model, cfg.train, in_channels=images.shape[1])
    logger = RunFolderLogger(out_dir, epoch_keys=module.epoch_level_keys)
    trainer = make_trainer(cfg, logger)
    trainer.fit(module, loader)

    final = logger.last_epoch_values()
    if trainer.is_global_zero:
        save_model(out_dir / "model.ckpt", module.model, cfg, in_channels=images.shape[1])
    return {k: final[k] for k in LOSS_STATS if k in final}
