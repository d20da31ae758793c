"""Two real CPU processes (gloo): gathered DDP validation gives the single-process metrics exactly."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from reprokit.evaluate.gather import gather_for_metrics
from reprokit.evaluate.metrics import retrieval_metrics

N_ITEMS = 101  # odd: DistributedSampler pads one item, which then appears on both ranks
WORLD = 2


class _Items(Dataset):
    """Deterministic toy validation set: inputs, labels, query/gallery flags, global index."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(N_ITEMS, 12, generator=gen)
        self.labels = torch.randint(0, 15, (N_ITEMS,), generator=gen)
        self.is_query = torch.rand(N_ITEMS, generator=gen) < 0.8
        self.is_gallery = torch.rand(N_ITEMS, generator=gen) < 0.8
        self.is_gallery |= ~self.is_query

    def __len__(self) -> int:
        return N_ITEMS

    def __getitem__(self, i: int):
        return i, self.x[i], self.labels[i], self.is_query[i], self.is_gallery[i]


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8)).eval()


@torch.no_grad()
def _embed_rows(loader) -> tuple[torch.Tensor, ...]:
    model = _model()
    parts = [(i, model(x), y, q, g) for i, x, y, q, g in loader]
    return tuple(torch.cat(col) for col in zip(*parts))


def _metrics(emb, labels, is_query, is_gallery) -> dict:
    res = retrieval_metrics(emb, labels, is_query, is_gallery, categories=(labels % 3).tolist())
    return {"json": res.to_json_dict(), "retrieved": res.retrieved.tolist()}


def _worker(rank: int, init_method: str, out_path: str) -> None:
    torch.set_num_threads(1)  # two processes on two cores
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=WORLD)
    try:
        data = _Items()
        sampler = DistributedSampler(data, num_replicas=WORLD, rank=rank, shuffle=True, seed=5)
        # Batch size 1: an item's embedding must not depend on which items share its batch.
        local = _embed_rows(DataLoader(data, batch_size=1, sampler=sampler))
        idx, emb, labels, is_query, is_gallery = gather_for_metrics(*local)
        if rank == 0:
            out = _metrics(emb, labels, is_query, is_gallery)
            out["n_local"] = len(local[0])
            out["gathered_index"] = idx.tolist()
            with open(out_path, "w") as f:
                json.dump(out, f)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_gloo_metrics_equal_single_process(tmp_path):
    out_path = tmp_path / "rank0.json"
    mp.spawn(_worker, args=(f"tcp://127.0.0.1:{_free_port()}", str(out_path)), nprocs=WORLD, join=True)
    ddp = json.loads(out_path.read_text())

    _, emb, labels, is_query, is_gallery = _embed_rows(DataLoader(_Items(), batch_size=1))
    single = _metrics(emb, labels, is_query, is_gallery)

    assert ddp["n_local"] == (N_ITEMS + 1) // 2  # the sampler really padded: 51 + 51 = 102 rows
    assert ddp["gathered_index"] == list(range(N_ITEMS))  # every item exactly once, in order
    assert ddp["json"] == single["json"]
    assert ddp["retrieved"] == single["retrieved"]
    assert ddp["json"]["n_queries"] == int(_Items().is_query.sum())


# ------------------------------------------------------- the search split across ranks (issue 27)
def _split_cases() -> dict:
    """Every rank holds all the embeddings; each searches its share of the queries.

    - ``many``: queries and gallery overlapping, sequences, every metric, a category whose queries
      all fall in rank 1's share (the second half of the queries);
    - ``one_query``: a single query: rank 0's share is empty;
    - ``tiny_budget``: map@r and r_precision alone with a budget whose top K is smaller than the
      largest class (the top-K path and the whole-ranking fallback, split across ranks).
    """
    gen = torch.Generator().manual_seed(3)
    n = 90
    x = torch.randint(-3, 4, (n, 3), generator=gen).float()  # many exact ties
    labels = torch.cat([torch.zeros(30, dtype=torch.long), torch.randint(1, 12, (n - 30,), generator=gen)])
    is_query = torch.rand(n, generator=gen) < 0.7
    is_gallery = ~is_query | (torch.rand(n, generator=gen) < 0.8)
    q_items = torch.nonzero(is_query).squeeze(1).tolist()
    late = set(q_items[len(q_items) // 2 + 1 :])  # rank 1's share (rank 0 has the first half, rounded down)
    categories = ["late-only" if i in late and i % 2 else f"c{i % 3}" for i in range(n)]
    sequences = torch.randint(0, 6, (n,), generator=gen).tolist()
    all_four = ("map@r", "r_precision", "mrr", "ap")
    one = torch.zeros(n, dtype=torch.bool)
    one[q_items[0]] = True
    return {
        "many": (x, labels, is_query, is_gallery, {"categories": categories, "sequence_ids": sequences,
                                                   "extra_metrics": all_four}),
        "one_query": (x, labels, one, torch.ones(n, dtype=torch.bool), {"categories": categories,
                                                                        "extra_metrics": all_four}),
        "tiny_budget": (x, labels, is_query, is_gallery, {"extra_metrics": ("map@r", "r_precision"),
                                                          "memory_budget_mb": 4 * 64 * 48 / 2**20}),
    }  # fmt: skip


def _split_outputs(case, distributed: bool, out_dir) -> dict:
    """metrics.json's content, and per_query.tsv written by validate's writer; its bytes."""
    import pandas as pd

    from reprokit.evaluate.scoring import write_per_query

    x, labels, is_query, is_gallery, options = case
    res = retrieval_metrics(x, labels, is_query, is_gallery, distributed=distributed, **options)
    frame = pd.DataFrame({"path": [f"images/{i:03d}.png" for i in range(len(x))]})
    path = out_dir / "per_query.tsv"
    write_per_query(path, res, frame)
    return {"json": res.to_json_dict(), "tsv": path.read_text()}


def _split_worker(rank: int, init_method: str, out_dir: str) -> None:
    from pathlib import Path

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=WORLD)
    try:
        got = {}
        for name, case in _split_cases().items():
            where = Path(out_dir) / f"rank{rank}_{name}"
            where.mkdir()
            got[name] = _split_outputs(case, True, where)
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(got))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_the_query_search_split_across_two_ranks_gives_one_process_bytes(tmp_path):
    # The ranks run one thread each, this process its default: the keys do not depend on it.
    mp.spawn(_split_worker, args=(f"tcp://127.0.0.1:{_free_port()}", str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for name, case in _split_cases().items():
        where = tmp_path / f"single_{name}"
        where.mkdir()
        single = _split_outputs(case, False, where)
        for got in ranks:  # every rank gets the whole result; rank 0 writes it
            assert got[name]["json"] == single["json"], name
            assert got[name]["tsv"] == single["tsv"], name
    many = ranks[0]["many"]["json"]
    assert "late-only" in many["by_category"]  # a category whose queries all sat on rank 1
    assert set(many["overall"]) >= {"map@r", "r_precision", "mrr", "ap"}
    assert ranks[0]["one_query"]["json"]["n_queries"] == 1  # rank 0 searched nothing
