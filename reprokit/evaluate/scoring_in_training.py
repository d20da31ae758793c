"""The validation split scored while training: validate's engine and definitions, overall only.

:class:`TrainingValidator` is what the train stage hands its loop as ``validator``: called with the
model (in eval mode), it embeds the validation split exactly as the validate stage does (the same
batches of ``validate.batch_size`` images, in the same order, under ``inference_mode``) and scores it
with :func:`reprokit.evaluate.scoring.score`, so the values at an epoch are the ones validate
gives that epoch's model. The per-category and per-query work stays in validate.

The decoded images are kept between validations when they fit in a quarter of
``validate.memory_budget_mb`` (decoding is most of a small model's validation time); otherwise each
validation decodes them again, batch by batch, with ``validate.num_workers`` workers. Under DDP each
rank embeds its share of the batches, the embeddings are gathered, and each rank searches its share
of the queries against the whole gallery; the per-query results are gathered back (every rank gets
the values one process gives).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

import pandas as pd
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from reprokit.core.config import Config
from reprokit.evaluate.gather import gather_for_metrics, is_distributed
from reprokit.evaluate.scoring import _batches, _embed_batches, _n_rows, score, validation_inputs

__all__ = ["TrainingValidator"]


class TrainingValidator:
    def __init__(self, cfg: Config, df: pd.DataFrame, paths: list[Path]) -> None:
        self.cfg = cfg
        self.val_df, self.images = validation_inputs(cfg, df, paths)
        self._kept: list | None = None  # this rank's decoded batches, once they are known to fit
        self._budget = cfg.validate.memory_budget_mb * 2**20 // 4

    def _my_batches(self, rank: int, world: int) -> list[int]:
        n_batches = -(-len(self.images) // self.cfg.validate.batch_size)
        if world == 1:
            return list(range(n_batches))
        # The sampler only takes len() of its dataset; torch types it a Dataset.
        return list(
            DistributedSampler(cast("Dataset[int]", range(n_batches)), num_replicas=world, rank=rank, shuffle=False)
        )

    def _batches(self, mine: list[int], rank: int) -> Iterable:
        if self._kept is not None:
            return self._kept
        v = self.cfg.validate
        batches = _batches(self.images, v.batch_size, mine, v.num_workers, self.cfg.seed, rank)
        n_bytes = _n_rows(len(self.images), v.batch_size, mine) * self.images.channels * self.images.size**2 * 4
        if n_bytes > self._budget:
            return batches
        self._kept = [(x, None, index) for x, _, index in batches]
        return self._kept

    def __call__(self, model: nn.Module) -> dict[str, float]:
        rank, world = (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)
        mine = self._my_batches(rank, world)
        n_rows = _n_rows(len(self.images), self.cfg.validate.batch_size, mine)
        idx, emb = _embed_batches(model, self._batches(mine, rank), n_rows, False)
        if world > 1:
            _, emb = gather_for_metrics(idx, emb)
        # Every rank holds every embedding; each searches its share of the queries (on the
        # embeddings' device) and gets the gathered result.
        res = score(self.cfg, self.val_df, emb, show_progress=False, by_category=False, distributed=world > 1)
        return dict(res.overall)
