"""Triplet loss with an in-batch miner, returning its statistics with it.

``triplet_loss`` is plain math over tensors (no Lightning): the module calls it and logs the
statistics. For a batch of embeddings it forms triplets (anchor, positive, negative) and returns

- ``loss``: ``relu(d(a,p) - d(a,n) + margin)`` averaged over the *active* mined triplets (those
  with a non-zero loss) for ``all``, over all anchors for ``hard``. Averaging batch-all over every
  triplet would let the easy majority dilute the gradient towards zero as training progresses;
  measured on the digits data: 0.55 against 0.49 validation CMC@1 after 6 epochs.
- ``pos_dist`` / ``neg_dist``: mean anchor-positive / anchor-negative distance over them,
- ``active_tri``: the fraction of mined triplets with a non-zero loss (the ones still teaching).

Miners: ``all`` uses every valid triplet in the batch ("batch-all"); ``hard`` takes, per anchor,
its farthest positive and nearest negative ("batch-hard").

``train.loss: {name, args}`` names the loss: ``triplet`` (:class:`TripletLoss`) or ``module:callable``
of the user's own. Either is called as ``build(**train.loss.args)`` and returns the loss, a callable
(an ``nn.Module`` is trained with the model: its parameters are optimised too) taking
``(embeddings [N, D], labels [N])`` and returning the loss, or ``(loss, {name: scalar})``:
statistics beside it, logged per step and per epoch like the triplet ones. A loss that returns a
bare tensor may keep its statistics in a ``last_logs`` dict, as open-metric-learning's losses do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from reprokit.core.components import AUTO, AUTO_FILLED, MinerConfig
from reprokit.core.config import LossConfig
from reprokit.core.errors import ConfigError
from reprokit.train.user_code import call, describe, load_callable

__all__ = ["pairwise_distances", "triplet_loss", "TripletLoss", "LOSSES", "build_loss", "fill_auto", "loss_and_stats"]

# Names the run folder's tables already use: a statistic may not take them.
RESERVED_STATS = ("loss", "step", "epoch")


def pairwise_distances(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    sq = (x * x).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    # eps keeps the gradient of sqrt finite on the diagonal (d = 0).
    return (d2 + eps).sqrt()


def triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, miner: str = "all"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    dist = pairwise_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same

    if miner == "all":
        # [A, P, N] validity: p a positive of a, n a negative of a.
        valid = pos_mask[:, :, None] & neg_mask[:, None, :]
        a, p, n = valid.nonzero(as_tuple=True)
        d_ap, d_an = dist[a, p], dist[a, n]
    elif miner == "hard":
        has_both = pos_mask.any(1) & neg_mask.any(1)
        d_ap = dist.masked_fill(~pos_mask, float("-inf")).max(dim=1).values[has_both]
        d_an = dist.masked_fill(~neg_mask, float("inf")).min(dim=1).values[has_both]
    else:
        raise ValueError(f"miner must be one of 'all', 'hard'; got {miner!r}")

    if d_ap.numel() == 0:
        zero = embeddings.sum() * 0.0  # keeps the graph so backward() works on a triplet-less batch
        stats = {k: zero.detach() for k in ("pos_dist", "neg_dist", "active_tri")}
        return zero, stats

    losses = torch.relu(d_ap - d_an + margin)
    active = losses > 0
    if miner == "all":
        loss = losses.sum() / active.sum().clamp_min(1)
    else:
        loss = losses.mean()
    stats = {
        "pos_dist": d_ap.mean().detach(),
        "neg_dist": d_an.mean().detach(),
        "active_tri": active.float().mean().detach(),
    }
    return loss, stats


class TripletLoss(nn.Module):
    """The built-in ``triplet`` loss: :func:`triplet_loss` with a margin and a miner (no parameters)."""

    def __init__(self, margin: float, miner: str) -> None:
        super().__init__()
        self.margin = margin
        self.miner = miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return triplet_loss(embeddings, labels, self.margin, self.miner)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, miner={self.miner!r}"


# Built-in name -> build(**args). Their args' schema and defaults are reprokit.core.config.LOSS_ARGS.
LOSSES: dict[str, Callable[..., Callable]] = {"triplet": TripletLoss}


def fill_auto(key: str, args: Mapping[str, Any], known: Mapping[str, int | None]) -> dict[str, Any]:
    """``args`` with each ``auto`` value (num_classes, embedding_size) replaced by what the run knows."""
    filled = dict(args)
    for name, value in args.items():
        if value != AUTO:
            continue
        if known.get(name) is None:
            raise ConfigError(
                f"{key}.args.{name} is 'auto' but {AUTO_FILLED.get(name, name)} is not known here",
                hint=f"write a number for {key}.args.{name}",
            )
        filled[name] = known[name]
    return filled


def build_loss(
    cfg: LossConfig,
    miner: MinerConfig | None = None,
    *,
    classes: torch.Tensor | None = None,
    embedding_size: int | None = None,
) -> Callable[..., Any]:
    """The loss ``cfg`` names, built with its args: a callable ``loss(embeddings, labels)``.

    ``classes`` (the training labels) and ``embedding_size`` fill ``auto`` args; a ``pml:`` loss
    takes ``miner`` (``train.miner``)."""
    known = {
        "num_classes": None if classes is None else int(torch.unique(torch.as_tensor(classes)).numel()),
        "embedding_size": embedding_size,
    }
    args = fill_auto("train.loss", cfg.resolved_args(), known)
    if cfg.name.startswith("pml:"):
        from reprokit.train.pml_loss import build_pml_loss

        miner_args = fill_auto("train.miner", miner.args, known) if miner is not None else None
        return build_pml_loss(cfg.name, args, miner, miner_args, classes)
    where = f"train.loss.name {cfg.name!r}"
    if cfg.name in LOSSES:
        builder, label = LOSSES[cfg.name], cfg.name
    else:
        builder, label = load_callable("train.loss.name", cfg.name), cfg.name.replace(":", ".")
    what = f"{label}(**train.loss.args)"
    loss = call(where, builder, what, args)
    if not callable(loss):
        raise ConfigError(
            f"{where}: {what} returned {describe(loss)}, not a callable loss(embeddings, labels)",
            hint="name a factory or an nn.Module class: it is called with train.loss.args and returns the loss",
        )
    return loss


def _scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.dtype.is_complex
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _stat(value: Any) -> Any:
    """A statistic as ``self.log`` takes it: a number, or a detached 0-d float tensor."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    value = value.detach()
    if value.ndim:
        value = value.reshape(())
    return value if value.is_floating_point() else value.float()


def loss_and_stats(where: str, output: Any, loss_fn: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """A loss's output as (a scalar loss tensor, {name: scalar} statistics), or a one-line error.

    ``output`` is a tensor or ``(loss, stats)``; for a tensor, ``loss_fn.last_logs`` (if a dict) are the stats.
    """
    if isinstance(output, tuple) and len(output) == 2:
        loss, stats = output
    elif isinstance(output, torch.Tensor):
        loss, stats = output, getattr(loss_fn, "last_logs", None)
        stats = stats if isinstance(stats, Mapping) else {}
    else:
        raise ConfigError(
            f"{where}: the loss returned {describe(output)}; expected a scalar tensor or (loss, {{name: scalar}})"
        )
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point()):
        raise ConfigError(f"{where}: the loss value is {describe(loss)}; expected a float tensor with one element")
    if not isinstance(stats, Mapping):
        raise ConfigError(f"{where}: the loss's statistics are {describe(stats)}; expected a mapping {{name: scalar}}")
    for name, value in stats.items():
        if not isinstance(name, str) or name in RESERVED_STATS:
            taken = ", ".join(RESERVED_STATS)
            raise ConfigError(f"{where}: a loss statistic's name must be a string other than {taken}; got {name!r}")
        if not _scalar(value):
            raise ConfigError(
                f"{where}: loss statistic {name!r} is {describe(value)}; expected a number or a one-element tensor"
            )
    if loss.ndim:
        loss = loss.reshape(())
    return loss, {k: _stat(v) for k, v in stats.items()}
