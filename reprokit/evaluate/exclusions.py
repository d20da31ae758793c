"""The gallery items a query never retrieves: itself and, with sequence ids, its own sequence.

open-metric-learning's rule for the ``sequence`` column: a gallery item from the query's own
sequence (the same video, the same photo session) is neither retrieved for that query nor
counted as its ground truth. Sequences arrive here as integer group codes (one per gallery item,
one per query); the query item itself is always excluded, group or not.

Masking works on one block of keys at a time (query rows x a range of gallery columns) and never
builds a query x gallery mask: the excluded positions of each group are kept sorted, so the
entries of a block are found by binary search. A block where most entries are excluded (a huge
sequence) is masked by one comparison instead, at 1 byte per block element.
"""

from __future__ import annotations

import torch

__all__ = ["Exclusions"]

# Working memory per block element that masking may use (dense mask or index lists).
BYTES_PER_ELEMENT = 2


class Exclusions:
    """Excluded gallery positions of every query: ``self_pos`` and the gallery items of its group.

    Args:
        self_pos: [Q] long, the gallery position of the query itself, or -1.
        n_gallery: G.
        query_group: [Q] long group codes (>= 0), or None for no groups.
        gallery_group: [G] long group codes (>= 0), or None.
    """

    def __init__(
        self,
        self_pos: torch.Tensor,
        n_gallery: int,
        query_group: torch.Tensor | None = None,
        gallery_group: torch.Tensor | None = None,
    ) -> None:
        if (query_group is None) != (gallery_group is None):
            raise ValueError("query_group and gallery_group must be given together")
        self.self_pos = self_pos
        self.n_gallery = n_gallery
        self.query_group = query_group
        self.gallery_group = gallery_group
        if gallery_group is not None:
            # Key group * G + position, sorted: the positions of group c lie in [c * G, (c + 1) * G).
            positions = torch.arange(n_gallery, device=gallery_group.device)
            self._keys = torch.sort(gallery_group * n_gallery + positions).values

    @property
    def has_groups(self) -> bool:
        return self.gallery_group is not None

    @property
    def bytes_per_element(self) -> int:
        return BYTES_PER_ELEMENT if self.has_groups else 0

    def count(self) -> torch.Tensor:
        """[Q] long: how many gallery items each query may not retrieve."""
        if self.query_group is None or self.gallery_group is None:  # given together
            return (self.self_pos >= 0).long()
        n_codes = int(max(self.query_group.max(), self.gallery_group.max())) + 1
        # unique + indexed assignment, not bincount: bincount refuses CUDA tensors in deterministic mode.
        codes, counts = torch.unique(self.gallery_group, return_counts=True)
        per_group = torch.zeros(n_codes, dtype=torch.long, device=codes.device)
        per_group[codes] = counts
        own_outside = (self.self_pos >= 0) & (self.gallery_group[self.self_pos.clamp(min=0)] != self.query_group)
        return per_group[self.query_group] + own_outside.long()

    def subset(self, rows: torch.Tensor) -> Exclusions:
        """The exclusions of the queries ``rows`` only (same gallery)."""
        if self.query_group is None:
            return Exclusions(self.self_pos[rows], self.n_gallery)
        return Exclusions(self.self_pos[rows], self.n_gallery, self.query_group[rows], self.gallery_group)

    def mask(self, block: torch.Tensor, rows: slice | torch.Tensor, start: int, stop: int) -> None:
        """Set +inf at the excluded entries of ``block``: query ``rows`` x gallery columns [start, stop)."""
        own = self.self_pos[rows]
        inside = (own >= start) & (own < stop)
        block[torch.nonzero(inside).squeeze(1), own[inside] - start] = float("inf")
        if self.query_group is not None:
            self._mask_groups(block, self.query_group[rows], start, stop)

    def _mask_groups(self, block: torch.Tensor, codes: torch.Tensor, start: int, stop: int) -> None:
        n = self.n_gallery
        gallery_group = self.gallery_group
        assert gallery_group is not None  # given with the query_group whose codes these are
        lo = torch.searchsorted(self._keys, codes * n + start)
        counts = torch.searchsorted(self._keys, codes * n + stop) - lo
        total = int(counts.sum())
        if total == 0:
            return
        if total > block.shape[0] * (stop - start) // 16:  # mostly excluded: one comparison is cheaper
            same = gallery_group[start:stop][None, :] == codes[:, None]
            block[:, : stop - start].masked_fill_(same, float("inf"))
            return
        row = torch.repeat_interleave(torch.arange(len(codes), device=codes.device), counts)
        first = torch.repeat_interleave(lo - (counts.cumsum(0) - counts), counts)
        cols = self._keys[first + torch.arange(total, device=codes.device)] % n
        block[row, cols - start] = float("inf")
