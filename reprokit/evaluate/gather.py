"""Gathering validation outputs from every DDP rank, exactly once per item.

``DistributedSampler`` pads the dataset so every rank gets the same number of items: with N items
and W ranks, ``ceil(N / W) * W - N`` items are seen twice. Averaging metrics over the padded set
(what a naive all_gather does) counts those items twice and changes the numbers. The helper here
keys every row by its global item index, drops repeats and returns rows in index order, so the
metrics computed from it are those of a single process on the same data.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_for_metrics", "gather_rows", "is_distributed", "process_share", "share_of_queries"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def process_share() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def share_of_queries(n_queries: int, rank: int, world: int) -> slice:
    """The contiguous queries rank ``rank`` of ``world`` searches: shares in rank order cover
    0..n_queries-1 once, sizes differ by at most one (a share is empty when world > n_queries)."""
    return slice(rank * n_queries // world, (rank + 1) * n_queries // world)


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``tensor`` concatenated in rank order (the tensor itself in one process)."""
    if is_distributed() and dist.get_world_size() > 1:
        return _all_gather_rows(tensor)
    return tensor


def gather_for_metrics(indices: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All-gather ``indices`` and ``tensors`` (rows aligned with ``indices``) from every rank.

    Ranks may hold different numbers of rows. Rows whose global index was already seen (the
    sampler's padding) are dropped, keeping the first occurrence in rank order. Returns
    ``(unique_sorted_indices, *tensors_in_that_order)`` on every rank. Without an initialised
    process group the local inputs are de-duplicated and sorted the same way.

    Works with gloo (CPU) and nccl (tensors on the current CUDA device).
    """
    indices = torch.as_tensor(indices)
    if indices.ndim != 1:
        raise ValueError(f"indices must be a 1-D tensor of global item indices; got shape {tuple(indices.shape)}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor; got {indices.dtype}")
    for i, t in enumerate(tensors):
        if t.ndim == 0 or t.shape[0] != indices.shape[0]:
            raise ValueError(
                f"tensors[{i}] must have one row per index ({indices.shape[0]}); got shape {tuple(t.shape)}"
            )
    parts = (indices.long(), *tensors)
    if is_distributed() and dist.get_world_size() > 1:
        parts = tuple(_all_gather_rows(t) for t in parts)
    return _unique_sorted(parts[0], parts[1:])


def _all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` of every rank along dim 0 (rank order); row counts may differ."""
    world = dist.get_world_size()
    device = tensor.device
    count = torch.tensor([tensor.shape[0]], dtype=torch.long, device=device)
    gathered = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(gathered, count)
    counts = [int(c.item()) for c in gathered]
    # all_gather needs equal shapes: pad to the longest, cut afterwards. bool is not supported by
    # every backend, so it travels as uint8.
    send = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
    longest = max(counts)
    if send.shape[0] < longest:
        pad = send.new_zeros((longest - send.shape[0], *send.shape[1:]))
        send = torch.cat([send, pad])
    received = [torch.empty_like(send) for _ in range(world)]
    dist.all_gather(received, send.contiguous())
    out = torch.cat([r[:c] for r, c in zip(received, counts)])
    return out.bool() if tensor.dtype == torch.bool else out


def _unique_sorted(indices: torch.Tensor, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    order = torch.sort(indices, stable=True).indices  # stable: the first occurrence comes first
    sorted_idx = indices[order]
    keep = torch.ones_like(sorted_idx, dtype=torch.bool)
    keep[1:] = sorted_idx[1:] != sorted_idx[:-1]
    rows = order[keep]
    return (indices[rows], *(t[rows.to(t.device)] for t in tensors))
