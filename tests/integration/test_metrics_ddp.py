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
