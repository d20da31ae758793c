"""The names of the retrieval metrics: one owner for the params.yaml checks and the metrics code.

OML-style metrics carry their cut-off (``cmc@1``, ``precision@5``, ``map@5``); the
pytorch-metric-learning ones (``EXTRA_METRICS``) have none: they are defined by each query's
number of ground-truth items (``map@r``, ``r_precision``) or by its whole ranking (``mrr``, ``ap``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["EXTRA_METRICS", "metric_names", "unknown_extra_metrics"]

EXTRA_METRICS = ("map@r", "r_precision", "mrr", "ap")


def metric_names(
    cmc_top_k: Sequence[int],
    precision_top_k: Sequence[int],
    map_top_k: Sequence[int],
    extra_metrics: Sequence[str] = (),
) -> list[str]:
    """``cmc@k``, ``precision@k``, ``map@k`` for the given k, then the extra metrics; each once, order kept."""
    names = [f"cmc@{k}" for k in cmc_top_k] + [f"precision@{k}" for k in precision_top_k]
    names += [f"map@{k}" for k in map_top_k]
    names += list(extra_metrics)
    return list(dict.fromkeys(names))


def unknown_extra_metrics(names: Iterable[object]) -> list[object]:
    """The entries of ``names`` that are not in ``EXTRA_METRICS`` (in order)."""
    return [n for n in names if n not in EXTRA_METRICS]
