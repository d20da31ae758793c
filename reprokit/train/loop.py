"""Training an embedding model on the train split and writing the train stage's run folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from reprokit.core.config import Config, DataConfig, ModelConfig, TrainConfig, TrainerConfig
from reprokit.core.fileio import atomic_path
from reprokit.core.layout import TrainDir
from reprokit.core.schema import to_plain
from reprokit.core.stage_deps import recorded_inputs
from reprokit.core.tables import write_table
from reprokit.data.images import ImageDataset, WorkerSeeder, image_loader
from reprokit.data.sampler import LabelBalancedBatchSampler
from reprokit.data.source import split_rows
from reprokit.log.run_logger import LiveSink, RunFolderLogger
from reprokit.train.checkpoint import save_model
from reprokit.train.embedding_module import EmbeddingModule
from reprokit.train.models import IMAGE_CHANNELS
from reprokit.train.validation_callback import EpochValidation, ValidationHook, Validator

__all__ = ["train", "new_run_identity", "ValidationHook", "Validator"]


def is_rank_zero() -> bool:
    """Whether this process is the global rank zero, also before a Trainer exists (launchers set these)."""
    return all(int(os.environ.get(k) or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def new_run_identity(exp_name: str | None) -> dict[str, str]:
    """The training run's identity, known from its first step: its id and name, those of the logger
    run it logs into live (the pipeline run's id is built on it). ``runs/train/run.json`` adds when
    it ran (Unix seconds): the experiment's own record of its time, e.g. to see queued experiments overlap."""
    run_id = uuid.uuid4().hex
    return {"run_id": run_id, "run_name": f"{exp_name or 'run'}-{run_id[:8]}"}


class _SamplerEpoch(pl.Callback):
    """Lightning calls set_epoch on samplers, not on batch samplers: ours follows the epoch
    Lightning gives samplers (the fit loop's processed epochs), read when an epoch's iterator
    starts: with workers that is before the epoch's hooks on a resumed run, whose trainer.current_epoch
    is then still the checkpoint's. It shards itself by rank; the workers' seeds take the rank too."""

    def __init__(self, sampler: LabelBalancedBatchSampler, seeder: WorkerSeeder) -> None:
        self.sampler = sampler
        self.seeder = seeder

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.sampler.set_distributed(trainer.global_rank, trainer.world_size)
        # The fit loop's epoch tracker counts processed epochs (Lightning annotates it as its base class).
        self.sampler.follow(lambda: trainer.fit_loop.epoch_progress.current.processed)  # type: ignore[attr-defined]
        self.seeder.rank = trainer.global_rank


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint beside its path and renames it into place: a run killed while saving
    never leaves a truncated last.ckpt for ``train.resume`` to read."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


# Lightning saves the epoch's checkpoint before it logs the epoch's values, so a checkpoint published at
# once could be resumed without its epoch's row in the tables (a kill between the two). It is saved
# under this name and renamed to last.ckpt only once the run-folder logger has put the tables that go
# with it beside it; a pending checkpoint found at start is one whose tables never arrived: dropped.
_PENDING = "last-pending"


def _publish_checkpoint(state_dir: Path) -> None:
    pending = state_dir / f"{_PENDING}.ckpt"
    if pending.exists():
        os.replace(pending, state_dir / "last.ckpt")


def resume_dir(seed: int, data: DataConfig, model: ModelConfig, train: TrainConfig, trainer: TrainerConfig) -> Path:
    """Where ``train.resume`` keeps its last checkpoint: outside the DVC outputs (DVC deletes
    those before a stage runs), one folder per training configuration (the sections training
    reads, ``train.resume`` aside), so a changed config never resumes from a checkpoint of another."""
    relevant = {
        "seed": seed,
        "data": to_plain(data),
        "model": to_plain(model),
        "train": to_plain(train),
        "trainer": to_plain(trainer),
    }
    relevant["train"] = {k: v for k, v in relevant["train"].items() if k != "resume"}
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
    return Path(".reprokit") / "resume" / digest


def make_trainer(
    t: TrainerConfig, train: TrainConfig, logger: RunFolderLogger, callbacks: list[pl.Callback]
) -> pl.Trainer:
    """Lightning's Trainer for the ``trainer`` section, ``train.epochs`` long, logging every ``train.log_every_n_steps``."""
    return pl.Trainer(
        max_epochs=train.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        default_root_dir=t.default_root_dir,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm if t.gradient_clip_val is not None else None,
        deterministic=True,
        logger=logger,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        callbacks=callbacks,
        enable_model_summary=False,
        log_every_n_steps=train.log_every_n_steps,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        plugins=[AtomicCheckpointIO()],
        # Our batch sampler shards itself across ranks (set_distributed): Lightning must not wrap it.
        use_distributed_sampler=False,
    )


def _resume_point(state_dir: Path, logger: RunFolderLogger, callbacks: list[pl.Callback]) -> str | None:
    """Checkpoint every epoch into ``state_dir``; the checkpoint to resume from when one is there
    (the logger's curves restored to it), else None."""
    # monitor=None + save_top_k=1: one checkpoint, overwritten at every epoch end (published by the logger).
    (state_dir / f"{_PENDING}.ckpt").unlink(missing_ok=True)
    callbacks.append(
        ModelCheckpoint(
            dirpath=state_dir, filename=_PENDING, every_n_epochs=1, save_top_k=1, enable_version_counter=False
        )
    )
    if not (state_dir / "last.ckpt").exists():
        return None
    ckpt_path = str(state_dir / "last.ckpt")
    logger.restore()
    print(f"train: resuming from {ckpt_path}", file=sys.stderr)
    return ckpt_path


def _save_outputs(out: TrainDir, module: EmbeddingModule, cfg: Config, in_channels: int) -> None:
    # The files training read (user code, weights, the dataframe) by sha256 at the stage's start.
    inputs = recorded_inputs(cfg.to_dict())
    save_model(out.model, module.model, cfg.model, cfg.data, in_channels=in_channels, inputs=inputs)
    if not out.validation_table.exists():  # nothing validated: a header, still the declared output
        write_table(out.validation_table, ["epoch", "step"], [])


def train(
    cfg: Config,
    df: pd.DataFrame,
    paths: list[Path],
    out_dir: Path,
    *,
    validator: Validator | None = None,
    on_validation: Sequence[ValidationHook] = (),
    live: LiveSink | None = None,
) -> tuple[dict[str, object], bool]:
    """Fit the model; write plots/ and model.ckpt (rank zero); return (final-epoch loss
    statistics, plus ``best`` with ``train.checkpoint: best``; whether this process is the global
    rank zero that writes the outputs).

    ``validator`` (model -> overall retrieval metrics) runs every ``train.validate_every_n_epochs``
    epochs and after the last; ``on_validation`` hooks are then called with ``(epoch, metrics)`` and
    may stop training (see ``reprokit.train.validation_callback``). ``live`` receives every logged value.
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    # The model and loss first: a user module that fails to import or build stops before any image is read.
    in_channels = IMAGE_CHANNELS[cfg.data.image_mode]
    train_df, train_paths = split_rows(df, paths, "train")
    classes = torch.tensor(train_df["label"].to_numpy())  # the training labels: num_classes: auto
    module = EmbeddingModule(
        cfg.model, cfg.train, in_channels, image_size=cfg.data.image_size, classes=classes, seed=cfg.seed
    )
    # Paths, boxes and labels only: each batch is decoded when the loader asks for it, by
    # train.num_workers worker processes (0: in this one), in the sampler's order.
    dataset = ImageDataset.from_frame(train_df, train_paths, cfg.data.image_size, cfg.data.image_mode)

    sampler = LabelBalancedBatchSampler(dataset.labels.numpy(), cfg.train.n_labels, cfg.train.n_instances, cfg.seed)
    seeder = WorkerSeeder(cfg.seed)
    loader = image_loader(dataset, sampler, cfg.train.num_workers, seeder, persistent=True)
    state_dir = resume_dir(cfg.seed, cfg.data, cfg.model, cfg.train, cfg.trainer) if cfg.train.resume else None
    publish = (lambda: _publish_checkpoint(state_dir)) if state_dir is not None else None
    logger = RunFolderLogger(
        out_dir, epoch_keys=module.epoch_level_keys, state_dir=state_dir, live=live, on_state_saved=publish
    )
    callbacks: list[pl.Callback] = [_SamplerEpoch(sampler, seeder)]
    validation = None
    if validator is not None and cfg.train.validate_every_n_epochs > 0:
        monitor = cfg.train.monitor if cfg.train.checkpoint == "best" else None
        validation = EpochValidation(
            validator, cfg.train.validate_every_n_epochs, cfg.train.epochs, monitor, on_validation
        )
        callbacks.append(validation)
    ckpt_path = _resume_point(state_dir, logger, callbacks) if state_dir is not None else None
    trainer = make_trainer(cfg.trainer, cfg.train, logger, callbacks)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    if state_dir is not None and trainer.is_global_zero:
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing left to resume

    final = logger.last_epoch_values()
    best = validation.best() if validation is not None else None
    if best is not None and validation is not None and validation.best_weights is not None:
        module.model.load_state_dict(validation.best_weights)  # model.ckpt is the best epoch's model
    if validation is not None and validation.stopped_at is not None and trainer.is_global_zero:
        print(f"train: stopped after epoch {validation.stopped_at}: a validation hook asked to", file=sys.stderr)
    if trainer.is_global_zero:
        _save_outputs(TrainDir(out_dir), module, cfg, in_channels)
    # The loss, then its statistics in the order the loss returns them (triplet: pos_dist, neg_dist,
    # active_tri), then anything else logged per epoch (a run resumed after its last step logs nothing).
    order = dict.fromkeys(("loss", *module.stat_names, *final))
    stats: dict[str, object] = {k: final[k] for k in order if k in final}
    if best is not None:
        stats["best"] = best
    return stats, trainer.is_global_zero
