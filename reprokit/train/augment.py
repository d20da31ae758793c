"""``train.augment``: kornia augmentations applied to each training batch, on its device.

Randomness: kornia draws from torch's global generator. Each batch is augmented inside
``torch.random.fork_rng`` with the generator seeded from ``(seed, epoch, batch index, rank)``, so the
augmentation of a batch is fixed by the one seed and the batch's place in training — not by what
else drew random numbers before it (data-loader workers, a resumed run's restored state, the model's
dropout) — and it leaves the global generator as it found it.

Validation never sees it: only ``training_step`` calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from reprokit.core.components import AugmentConfig
from reprokit.core.errors import ConfigError
from reprokit.train.library import AUGMENTATIONS, build
from reprokit.train.user_code import describe, reason

__all__ = ["BatchAugmentation", "batch_seed"]

PROBE_BATCH = 2


def batch_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """A 63-bit seed for one batch, independent of every other batch's."""
    return int(np.random.SeedSequence([seed, epoch, batch_idx, rank]).generate_state(2, dtype=np.uint64)[0] >> 1)


class BatchAugmentation:
    """The ``train.augment`` pipeline. Deliberately not an ``nn.Module`` of the LightningModule:
    it holds no weights, so checkpoints and the model's ``state_dict`` stay as they were without it."""

    def __init__(self, blocks: Sequence[AugmentConfig], seed: int, channels: int, image_size: int) -> None:
        self.seed = seed
        self.names = [b.name for b in blocks]
        steps = []
        for i, block in enumerate(blocks):
            step = build(f"train.augment[{i}]", block.name, AUGMENTATIONS, block.args)
            if not isinstance(step, nn.Module):
                raise ConfigError(
                    f"train.augment[{i}].name {block.name!r} returned {describe(step)}, not a torch.nn.Module"
                )
            steps.append(step)
        self.pipeline = nn.Sequential(*steps)
        self._probe(channels, image_size)

    def _probe(self, channels: int, image_size: int) -> None:
        """Run the pipeline once on a batch of the training shape: it must keep that shape (the model
        and the sampler's batches are sized for it). Drawn under a forked generator: no trace left."""
        shape = [PROBE_BATCH, channels, image_size, image_size]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                out = self.pipeline(torch.rand(shape))
            except Exception as exc:
                raise ConfigError(
                    f"train.augment ({', '.join(self.names)}) fails on a batch of shape {shape}: {reason(exc)}"
                ) from exc
        if not isinstance(out, torch.Tensor) or list(out.shape) != shape:
            raise ConfigError(
                f"train.augment must keep the batch's shape {shape} (data.image_size {image_size}); "
                f"({', '.join(self.names)}) returned {describe(out)}",
                hint=f"give size-changing augmentations (e.g. RandomResizedCrop) size: [{image_size}, {image_size}]",
            )

    def __call__(self, images: torch.Tensor, epoch: int, batch_idx: int, rank: int) -> torch.Tensor:
        devices = [images.device] if images.device.type == "cuda" else []
        # In full precision whatever trainer.precision is: the augmented pixels do not depend on it.
        with (
            torch.random.fork_rng(devices=devices),
            torch.no_grad(),
            torch.autocast(device_type=images.device.type, enabled=False),
        ):
            torch.manual_seed(batch_seed(self.seed, epoch, batch_idx, rank))
            return self.pipeline(images.float()).to(images.dtype)
