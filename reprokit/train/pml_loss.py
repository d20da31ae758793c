"""pytorch-metric-learning's losses and miners as reprokit calls a loss: ``(embeddings, labels) -> (loss, stats)``.

``train.loss.name: pml:<Class>`` (``pytorch_metric_learning.losses``) with an optional
``train.miner`` (``pml:<Class>`` of ``pytorch_metric_learning.miners``, or ``module:callable``),
whose tuples reach the loss as PML intends: ``loss(embeddings, labels, indices_tuple)``.

Labels are numbered 0..C-1 in sorted order of the training labels before they reach PML: its
classification losses (ArcFace, CosFace, SoftTriple, ProxyAnchor, ...) index a [C, D] weight by
label, and ``num_classes: auto`` is C.

Statistics, per step and per epoch beside the loss, over the pairs the loss is given (the mined
ones with a miner, every pair of the batch without): ``pos_dist`` / ``neg_dist``, the mean
Euclidean distance of positive / negative pairs; with a miner, ``mined``: the fraction of the
batch's positive and negative pairs (or triplets) it kept — the pairs still teaching, as
``active_tri`` is for the built-in triplet loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from reprokit.core.components import MinerConfig
from reprokit.core.errors import ConfigError
from reprokit.train.library import PML_LOSSES, PML_MINERS, build
from reprokit.train.losses import pairwise_distances
from reprokit.train.user_code import describe

__all__ = ["PMLLoss", "build_pml_loss", "pair_statistics"]


def _mean(values: torch.Tensor) -> torch.Tensor:
    return values.mean() if values.numel() else values.new_zeros(())


def pair_statistics(embeddings: torch.Tensor, labels: torch.Tensor, tuples: tuple | None) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        dist = pairwise_distances(embeddings.detach().float())
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos, neg = same & ~eye, ~same
        if tuples is None:
            return {"pos_dist": _mean(dist[pos]), "neg_dist": _mean(dist[neg])}
        if len(tuples) == 3:  # triplets (anchor, positive, negative)
            a, p, n = tuples
            possible = (pos.sum(1) * neg.sum(1)).sum()
            stats = {
                "pos_dist": _mean(dist[a, p]),
                "neg_dist": _mean(dist[a, n]),
                "mined": len(a) / possible.clamp_min(1),
            }
        else:  # pairs (anchor, positive, anchor, negative)
            a1, p, a2, n = tuples
            possible = pos.sum() + neg.sum()
            stats = {
                "pos_dist": _mean(dist[a1, p]),
                "neg_dist": _mean(dist[a2, n]),
                "mined": (len(a1) + len(a2)) / possible.clamp_min(1),
            }
        return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in stats.items()}


class PMLLoss(nn.Module):
    """A PML loss (an ``nn.Module``: its parameters, if any, train with the model and are in the
    checkpoint) and an optional miner, over labels numbered 0..C-1 by ``classes``."""

    classes: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, name: str, loss: nn.Module, miner: Callable[..., Any] | None, classes: torch.Tensor) -> None:
        super().__init__()
        self.name = name
        self.loss = loss
        self.miner = miner
        self.register_buffer("classes", torch.as_tensor(classes, dtype=torch.long).sort().values)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        targets = torch.searchsorted(self.classes, labels)
        tuples = None
        if self.miner is not None:
            tuples = self.miner(embeddings, targets)
            if not (
                isinstance(tuples, tuple) and len(tuples) in (3, 4) and all(isinstance(t, torch.Tensor) for t in tuples)
            ):
                raise ConfigError(
                    f"train.miner returned {describe(tuples)}; expected PML's indices_tuple: "
                    "(anchor, positive, negative) or (anchor1, positive, anchor2, negative) index tensors"
                )
        # PML's losses compute in float32 (their reducers and proxies are float32 parameters).
        emb = embeddings.float()
        loss = self.loss(emb, targets, tuples) if tuples is not None else self.loss(emb, targets)
        return loss, pair_statistics(embeddings, targets, tuples)

    def extra_repr(self) -> str:
        return f"{self.name}, {len(self.classes)} classes"


def build_pml_loss(
    name: str,
    args: dict[str, Any],
    miner: MinerConfig | None,
    miner_args: dict[str, Any] | None,
    classes: torch.Tensor | None,
) -> PMLLoss:
    """``train.loss`` ``pml:<Class>`` built with ``args`` (``auto`` already filled), with its miner."""
    if classes is None:
        raise ConfigError(f"train.loss.name {name!r}: a pml: loss is built with the training labels; none were given")
    loss = build("train.loss", name, PML_LOSSES, args)
    mined = build("train.miner", miner.name, PML_MINERS, miner_args or {}) if miner is not None else None
    if miner is not None and mined is not None and not callable(mined):
        raise ConfigError(
            f"train.miner.name {miner.name!r} returned {describe(mined)}, not a callable miner(embeddings, labels)"
        )
    return PMLLoss(name, loss, mined, torch.unique(torch.as_tensor(classes)))
