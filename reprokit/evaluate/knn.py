"""Chunked exact k-nearest-neighbour search of queries against a gallery.

The full query x gallery distance matrix is never built. Queries are processed in chunks whose
block fits the memory budget: the squared norms are computed once, each block of keys is one
GEMM into a reused buffer, and a vectorised minimum over 64-column segments finds the few
segments that can hold the nearest items, so topk runs on those only (a topk over the whole row
costs about a third of the GEMM). ``TILE_COLUMNS`` also splits each chunk into gallery column
tiles, as FAISS's exact search does, the top k of every tile merged into the chunk's; measured on
the 2-core machine of the README it is slower here (each tile costs a handful of small torch
operations, which suffer most when the cores are shared), so whole rows are the default. A
``BlockObserver`` (e.g. the ranks of the ground-truth items) gets every chunk's whole-row keys.

Ranking key. For the Euclidean distance the block holds ``||g||^2 - 2 q.g`` (one ``addmm``): the
``||q||^2`` term is the same along a row, so it cannot change the order and is only added to the
K kept values. For the cosine distance the block holds ``-q.g`` of L2-normalised vectors and the
distance is ``1 - q.g``.

Ties. Equal keys are ordered by gallery position (= by item index, since gallery positions follow
item order), so results never depend on how topk happened to pick among equals: ties inside the
top K are re-sorted, and a tie across the K-th place (detected by asking topk for one extra value)
sends that row to a stable full sort.

Chunking never changes a key: a GEMM of fewer than 16 rows is padded to 16 (MKL computes a
handful of rows or columns with other kernels, which round differently), so the keys, hence the
rankings and every metric, are the same whatever the memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from reprokit.core.progress import progress
from reprokit.evaluate.exclusions import Exclusions

__all__ = ["DISTANCES", "BlockObserver", "chunked_knn", "device_budget_mb", "query_chunk_rows"]

DISTANCES = ("euclidean", "cosine")

# Rows per chunk are capped: past a few hundred rows the GEMM is already at full speed, and a
# smaller block stays closer to the caches for the segment-minimum pass that reads it right after.
MAX_CHUNK_ROWS = 512
# Columns per segment of the row-minimum prefilter in _smallest.
SEGMENT = 64
# Gallery columns per tile when the gallery is tiled (a multiple of SEGMENT); None: whole rows.
TILE_COLUMNS: int | None = None
# A GEMM computes at least this many rows (see the module docstring).
MIN_GEMM_ROWS = 16
# Working memory per block element: the block itself (4 bytes) plus, for the rare rows that need a
# full stable sort, their sorted values and int64 positions, done in sub-batches of at most a
# quarter of the chunk (12 bytes x 1/4 < 4). Hence 2 x 4 bytes.
_BYTES_PER_ELEMENT = 8


class BlockObserver(Protocol):
    """Sees the keys of every query chunk against the whole gallery, before the buffer is reused."""

    bytes_per_element: float  # working memory it needs per block element

    def __call__(self, rows: slice, block: torch.Tensor) -> None:
        """``block``: [rows, >= G] keys (columns >= G and excluded items are +inf)."""


def query_chunk_rows(n_gallery: int, memory_budget_mb: float, itemsize: int = 4, extra_bytes: float = 0) -> int:
    """Number of query rows per chunk so that a chunk's working memory fits ``memory_budget_mb``.

    ``extra_bytes``: working memory per block element beyond the search's own. At least one row:
    a single row always has to be computed, even if it exceeds the budget.
    """
    budget = memory_budget_mb * 1024 * 1024
    per_row = (n_gallery + SEGMENT) * (_BYTES_PER_ELEMENT * itemsize / 4 + extra_bytes)
    return int(max(1, min(MAX_CHUNK_ROWS, budget // per_row)))


# On a CUDA device the chunks may take at most this share of the memory free when the search
# starts (the rest is the allocator's slack and whatever else the process holds there).
CUDA_FREE_SHARE = 0.5


def device_budget_mb(memory_budget_mb: float, device: torch.device) -> float:
    """The working-memory budget on ``device``: ``memory_budget_mb``, and on CUDA at most
    ``CUDA_FREE_SHARE`` of the device's free memory (the chunk size follows the device, not the host)."""
    if device.type != "cuda":
        return memory_budget_mb
    free, _ = torch.cuda.mem_get_info(device)
    return min(memory_budget_mb, CUDA_FREE_SHARE * free / 2**20)


class _Keys:
    """Ranking keys ``bias + alpha * q.g`` of query rows against gallery columns (smallest = nearest)."""

    def __init__(self, queries: torch.Tensor, gallery: torch.Tensor, distance: str) -> None:
        if distance == "euclidean":
            self.bias = (gallery * gallery).sum(dim=1)
            self.alpha = -2.0
        elif distance == "cosine":
            queries = F.normalize(queries, dim=1)
            gallery = F.normalize(gallery, dim=1)
            self.bias = torch.zeros(gallery.shape[0], dtype=queries.dtype, device=queries.device)
            self.alpha = -1.0
        else:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
        self.queries, self.distance = queries, distance
        self.gallery_t = gallery.T  # a view: BLAS reads the transposed layout directly

    def into(self, buf: torch.Tensor, rows: slice | torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Keys of query ``rows`` x gallery columns [start, stop), written into ``buf`` (reused)."""
        q = self.queries[rows]
        n = q.shape[0]
        if n < MIN_GEMM_ROWS:
            q = torch.cat([q, q.new_zeros(MIN_GEMM_ROWS - n, q.shape[1])])
        out = buf[: q.shape[0], : stop - start]
        torch.addmm(self.bias[None, start:stop], q, self.gallery_t[:, start:stop], beta=1, alpha=self.alpha, out=out)
        return buf[:n]

    def distances(self, vals: torch.Tensor) -> torch.Tensor:
        """Distances from the kept keys: add the ``||q||^2`` row term (euclidean) or 1 (cosine)."""
        if self.distance == "euclidean":
            return (vals + (self.queries * self.queries).sum(dim=1)[:, None]).clamp_(min=0).sqrt_()
        return vals + 1.0


@dataclass
class _Tile:
    start: int
    stop: int
    n_seg: int  # segments for the prefilter, 0 = a plain topk
    buf: torch.Tensor  # [rows, width rounded up to segments], +inf past stop - start


def _tiles(n_g: int, kk: int, rows: int, like: torch.Tensor, whole_rows: bool) -> list[_Tile]:
    """The gallery column tiles, each with its reused buffer (tiles of one width share one)."""
    n_tiles = 1 if whole_rows or TILE_COLUMNS is None else max(1, -(-n_g // TILE_COLUMNS))
    width = -(-n_g // n_tiles)
    if n_tiles > 1 and n_g - (n_tiles - 1) * width < max(kk, MIN_GEMM_ROWS):
        width = n_g  # a last tile narrower than k (or than a consistent GEMM): whole rows
    buffers: dict[int, torch.Tensor] = {}
    tiles = []
    for start in range(0, n_g, width):
        w = min(width, n_g - start)
        n_seg = -(-w // SEGMENT) if -(-w // SEGMENT) >= 4 * kk else 0
        if w not in buffers:  # by width: the columns past it must stay +inf
            padded = n_seg * SEGMENT if n_seg else w
            buffers[w] = torch.full(
                (max(rows, MIN_GEMM_ROWS), padded), float("inf"), dtype=like.dtype, device=like.device
            )
        tiles.append(_Tile(start, start + w, n_seg, buffers[w]))
    return tiles


@torch.no_grad()
def chunked_knn(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    self_pos: torch.Tensor,
    distance: str = "euclidean",
    memory_budget_mb: float = 1024,
    progress: bool = False,
    exclusions: Exclusions | None = None,
    observer: BlockObserver | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery rows of every query row, nearest first.

    Args:
        queries: [Q, D] float tensor.
        gallery: [G, D] float tensor.
        k: neighbours per query, 0 <= k <= G.
        self_pos: [Q] long tensor, the gallery position of the query itself (never retrieved for
            it), or -1 when the query is not a gallery item.
        distance: "euclidean" or "cosine".
        exclusions: what else each query never retrieves (its sequence); default: itself only.
        observer: called with every chunk's whole-row keys (see ``BlockObserver``).

    Returns:
        ``(positions, distances)``: [Q, k] long gallery positions and [Q, k] float distances.
        A query with fewer than ``k`` retrievable items gets position -1 and distance inf in its
        last slots.
    """
    n_q, n_g = queries.shape[0], gallery.shape[0]
    excl = exclusions if exclusions is not None else Exclusions(self_pos, n_g)
    device = queries.device
    if n_q == 0 or (k == 0 and observer is None):
        return (torch.full((n_q, k), -1, dtype=torch.long, device=device),
                torch.full((n_q, k), float("inf"), device=device))  # fmt: skip
    keys = _Keys(queries, gallery, distance)
    extra = excl.bytes_per_element + (observer.bytes_per_element if observer is not None else 0)
    n_rows = query_chunk_rows(n_g, device_budget_mb(memory_budget_mb, device), queries.element_size(), extra)
    kk = min(k + 1, n_g)  # one extra value reveals a tie across the k-th place
    tiles = _tiles(n_g, kk, min(n_rows, n_q), queries, whole_rows=observer is not None)
    top_vals, top_pos = _search_chunks(keys, excl, tiles, n_q, n_rows, kk if k else 0, observer, progress)
    vals, pos = _order_ties_by_position(top_vals[:, :k], top_pos[:, :k])
    if kk > k > 0:
        _resolve_boundary_ties(keys, excl, n_g, max(1, min(n_rows, n_q) // 4), top_vals, k, vals, pos)
    dists = keys.distances(vals)
    # Slots past a query's retrievable items hold masked entries: mark them as padding.
    pad = torch.arange(k, device=device)[None, :] >= (n_g - excl.count())[:, None]
    pos[pad] = -1
    dists[pad] = float("inf")
    return pos, dists


def _search_chunks(keys, excl, tiles, n_q, n_rows, kk, observer, show) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``kk`` smallest keys of every query and their gallery positions, chunk by chunk.

    Per chunk only the search itself; everything on the small [Q, kk] result is done once at the
    end (fewer small operations per chunk: they cost most when the cores are shared).
    """
    top_vals = torch.empty((n_q, kk), dtype=keys.queries.dtype, device=keys.queries.device)
    top_pos = torch.empty((n_q, kk), dtype=torch.long, device=keys.queries.device)
    for start in progress(range(0, n_q, n_rows), "retrieval", enabled=show):
        rows = slice(start, min(start + n_rows, n_q))
        found = []
        for tile in tiles:
            block = keys.into(tile.buf, rows, tile.start, tile.stop)
            excl.mask(block, rows, tile.start, tile.stop)
            if observer is not None:
                observer(rows, block)
            if kk:
                vals, cols = _smallest(block, kk, tile.n_seg)
                found.append((vals, cols + tile.start if tile.start else cols))
        if len(found) == 1:
            top_vals[rows], top_pos[rows] = found[0]
        elif found:  # merge the tiles' top kk: the kk smallest of the union are among them
            vals, at = torch.topk(torch.cat([v for v, _ in found], dim=1), kk, dim=1, largest=False, sorted=True)
            top_vals[rows], top_pos[rows] = vals, torch.cat([c for _, c in found], dim=1).gather(1, at)
    return top_vals, top_pos


def _resolve_boundary_ties(keys, excl, n_g, sub_rows, top_vals, k, vals, pos) -> None:
    """Rows whose k-th key ties with the next one: recompute their keys and sort them whole, stably.

    Rare with real embeddings. Updates ``vals`` and ``pos`` in place.
    """
    boundary_tie = (top_vals[:, k] == top_vals[:, k - 1]) & torch.isfinite(top_vals[:, k - 1])
    tied = torch.nonzero(boundary_tie).squeeze(1)
    if len(tied) == 0:
        return
    buf = torch.empty((max(min(sub_rows, len(tied)), MIN_GEMM_ROWS), n_g), dtype=top_vals.dtype, device=top_vals.device)
    for i in range(0, len(tied), sub_rows):
        sub = tied[i : i + sub_rows]
        block = keys.into(buf, sub, 0, n_g)
        excl.mask(block, sub, 0, n_g)
        sorted_vals, sorted_pos = torch.sort(block, dim=1, stable=True)
        vals[sub], pos[sub] = sorted_vals[:, :k], sorted_pos[:, :k]


def _smallest(block: torch.Tensor, kk: int, n_seg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``kk`` smallest values of each row (sorted) and their columns.

    With ``n_seg`` segments, topk runs on the ``kk`` segments with the smallest minima only: any
    element outside them is >= the minima of ``kk`` chosen segments, i.e. >= ``kk`` chosen
    elements, so the ``kk`` smallest values are found exactly (ties included, as values). A
    vectorised row-segment minimum is several times cheaper than topk over the whole row.
    """
    if n_seg == 0:
        return torch.topk(block, kk, dim=1, largest=False, sorted=True)
    n_rows = block.shape[0]
    segments = block.view(n_rows, n_seg, SEGMENT)
    _, seg = torch.topk(segments.amin(dim=2), kk, dim=1, largest=False, sorted=False)
    cand = segments.gather(1, seg[:, :, None].expand(n_rows, kk, SEGMENT)).view(n_rows, kk * SEGMENT)
    vals, at = torch.topk(cand, kk, dim=1, largest=False, sorted=True)
    cols = seg.gather(1, at // SEGMENT) * SEGMENT + at % SEGMENT
    return vals, cols


def _order_ties_by_position(vals: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (value, position); topk's order among equal values is unspecified."""
    by_pos = pos.argsort(dim=1)
    vals, pos = vals.gather(1, by_pos), pos.gather(1, by_pos)
    by_val = vals.argsort(dim=1, stable=True)
    return vals.gather(1, by_val), pos.gather(1, by_val)
