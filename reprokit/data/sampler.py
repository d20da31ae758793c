"""Label-balanced batches: ``n_labels`` labels x ``n_instances`` instances of each per batch.

Triplet mining needs positives in every batch, which uniform shuffling of thousands of labels
almost never gives. Batches are precomputed per epoch from index lists (no masking of the whole
training set per step) and depend only on ``seed`` and the epoch number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from reprokit.core.errors import ConfigError

__all__ = ["LabelBalancedBatchSampler"]


class LabelBalancedBatchSampler:
    """Yields lists of dataset indices. Each label appears in at most one batch per epoch.

    The batches are a pure function of (seed, epoch): call ``set_epoch`` before each epoch, or
    ``follow`` a source of the epoch (reprokit's training follows the Trainer's epoch, so a resumed
    run sees the same batches, with DataLoader workers too).
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, n_labels: int, n_instances: int, seed: int) -> None:
        label_array = np.asarray(labels)
        problems = self.problems(label_array, n_labels, n_instances)
        if problems:
            raise problems[0]
        uniq, inverse, counts = np.unique(label_array, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(counts)[:-1]
        self._members = np.split(order, bounds)  # per label, its dataset indices
        self.n_labels = n_labels
        self.n_instances = n_instances
        self.seed = seed
        self.epoch = 0
        self._epoch_of: Callable[[], int] | None = None
        self.rank, self.world_size = 0, 1

    @staticmethod
    def problems(
        labels: Sequence[int] | np.ndarray, n_labels: int, n_instances: int, shown: Callable[[int], str] = str
    ) -> list[ConfigError]:
        """Why batches of ``n_labels`` x ``n_instances`` cannot be drawn from ``labels`` (empty: they can).

        The one owner of that rule: the constructor raises the first, ``reprokit check-data`` lists all.
        ``shown`` writes a label in a message (e.g. with the text it was numbered from).
        """
        uniq, counts = np.unique(np.asarray(labels), return_counts=True)
        found = []
        if n_labels > len(uniq):
            found.append(
                ConfigError(
                    f"train.n_labels must be <= the number of training labels ({len(uniq)}); got {n_labels}",
                    hint=f"lower train.n_labels to {len(uniq)} or add training labels",
                )
            )
        if len(uniq) and counts.min() < n_instances:
            small = uniq[counts < n_instances]
            found.append(
                ConfigError(
                    f"train.n_instances must be <= the instances of every training label; got {n_instances}, "
                    f"but {len(small)} label(s) have fewer (e.g. label {shown(int(small[0]))} has {counts[counts < n_instances][0]})",
                    hint=f"lower train.n_instances to {int(counts.min())} or drop the small labels",
                )
            )
        return found

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def follow(self, epoch_of: Callable[[], int]) -> None:
        """Read the epoch from ``epoch_of()`` each time an epoch's iteration starts.

        DataLoader workers prefetch batches as soon as the iterator exists, and Lightning creates
        a resumed run's first iterator before any epoch hook: a value set from a hook would come
        too late there, the Trainer's restored progress does not.
        """
        self._epoch_of = epoch_of

    def set_distributed(self, rank: int, world_size: int) -> None:
        """Under DDP each rank takes every world_size-th batch of the same epoch plan."""
        self.rank, self.world_size = rank, world_size

    def _n_batches(self) -> int:
        return len(self._members) // self.n_labels

    def __len__(self) -> int:
        return self._n_batches() // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        if self._epoch_of is not None:
            self.epoch = int(self._epoch_of())
        rng = np.random.default_rng([self.seed, self.epoch])
        label_order = rng.permutation(len(self._members))
        for b in range(self._n_batches()):
            batch: list[int] = []
            for label_idx in label_order[b * self.n_labels : (b + 1) * self.n_labels]:
                members = self._members[label_idx]
                batch.extend(rng.choice(members, size=self.n_instances, replace=False).tolist())
            # Every rank draws the whole plan (same RNG stream) and keeps its share; the
            # remainder that would leave ranks out of step is dropped.
            if b % self.world_size == self.rank and b < len(self) * self.world_size:
                yield batch
