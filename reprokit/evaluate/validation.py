"""Embedding the validation split and scoring retrieval; writing the validate stage's run folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from reprokit.core.config import Config, TrainerConfig
from reprokit.core.fileio import write_json, write_text
from reprokit.core.metric_names import EXTRA_METRICS
from reprokit.core.progress import progress
from reprokit.core.tables import write_table
from reprokit.data.images import load_images
from reprokit.data.source import split_rows
from reprokit.evaluate.gather import gather_for_metrics
from reprokit.evaluate.metrics import retrieval_metrics

__all__ = ["embed", "embed_distributed", "score", "validation_inputs", "wants_distributed", "write_validation"]


def validation_inputs(cfg: Config, df: pd.DataFrame, paths: list[Path]) -> tuple[pd.DataFrame, torch.Tensor]:
    val_df, val_paths = split_rows(df, paths, "validation")
    return val_df, load_images(val_df, val_paths, cfg.data.image_size, cfg.data.image_mode)


@torch.inference_mode()
def _embed_batches(model: nn.Module, images: torch.Tensor, batch_size: int, batch_ids: list[int], show: bool):
    idx, out = [], []
    for b in progress(batch_ids, "embedding", enabled=show):
        stop = min((b + 1) * batch_size, len(images))
        idx.append(torch.arange(b * batch_size, stop))
        out.append(model(images[b * batch_size : stop]))
    return torch.cat(idx), torch.cat(out)


def embed(model: nn.Module, images: torch.Tensor, batch_size: int, show_progress: bool = True) -> torch.Tensor:
    """Embeddings of all images, in order."""
    n_batches = -(-len(images) // batch_size)
    return _embed_batches(model, images, batch_size, list(range(n_batches)), show_progress)[1]


def wants_distributed(t: TrainerConfig) -> bool:
    return t.devices > 1 or t.num_nodes > 1 or t.strategy.startswith("ddp")


def embed_distributed(cfg: Config, model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(all embeddings in order, is_global_zero) under Lightning Fabric with the ``trainer`` settings.

    Ranks share out whole batches (a DistributedSampler over batch ids) so every image is
    embedded in exactly the batch it would be in one process: bit-identical embeddings, hence
    identical metrics. The sampler's padding repeats a batch on some rank; the gather drops
    those repeats by item index.
    """
    from lightning.fabric import (
        Fabric,  # Lightning's launcher: only paid for when asked for
    )

    t = cfg.trainer
    fabric = Fabric(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy)
    fabric.launch()
    bs = cfg.validate.batch_size
    n_batches = -(-len(images) // bs)
    shard = DistributedSampler(range(n_batches), num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=False)
    idx, emb = _embed_batches(model, images, bs, list(shard), fabric.is_global_zero)
    _, emb = gather_for_metrics(idx, emb)
    return emb, fabric.is_global_zero


def score(
    cfg: Config, val_df: pd.DataFrame, embeddings: torch.Tensor, show_progress: bool = True, extra_metrics: bool = True
):
    """Retrieval metrics of the validation split with the ``validate`` settings.

    The dataframe's optional ``category`` and ``sequence`` columns are used as they are (a
    ``sequence`` cell is text; equal texts, empty ones included, are one sequence).
    ``extra_metrics=False`` leaves out ``validate.extra_metrics`` (the raw-pixel baseline).
    """
    v = cfg.validate
    categories = val_df["category"].astype(str).tolist() if "category" in val_df.columns else None
    sequences = val_df["sequence"].tolist() if "sequence" in val_df.columns else None
    return retrieval_metrics(
        embeddings,
        torch.tensor(val_df["label"].to_numpy(), dtype=torch.long),
        torch.tensor(val_df["is_query"].to_numpy(dtype=bool)),
        torch.tensor(val_df["is_gallery"].to_numpy(dtype=bool)),
        categories=categories,
        cmc_top_k=v.cmc_top_k,
        precision_top_k=v.precision_top_k,
        map_top_k=v.map_top_k,
        distance=v.distance,
        memory_budget_mb=v.memory_budget_mb,
        retrieve_k=max([cfg.visualize.top_k, *v.cmc_top_k]),
        progress=show_progress,
        sequence_ids=sequences,
        extra_metrics=v.extra_metrics if extra_metrics else (),
    )


def _fmt(x) -> str:
    return "" if pd.isna(x) else repr(float(x))


def write_per_query(path: Path, res, val_df: pd.DataFrame) -> None:
    """One row per query; item indices are rows of the validation split, paths given for reading."""
    pq = res.per_query.copy()
    pq.insert(1, "path", val_df["path"].to_numpy()[pq["item"].to_numpy()])
    pq["retrieved"] = [" ".join(str(int(i)) for i in r) for r in pq["retrieved"]]
    pq["distances"] = [" ".join(repr(round(float(d), 6)) for d in r) for r in pq["distances"]]
    for name in res.metric_names:
        pq[name] = [_fmt(x) for x in pq[name]]
    write_text(path, pq.to_csv(index=False, sep="\t"))


def cmc_curve(res, val_df: pd.DataFrame, max_k: int) -> list[dict]:
    """CMC@k for k = 1..max_k from the retrieved lists (queries with ground truth only)."""
    labels = torch.tensor(val_df["label"].to_numpy(), dtype=torch.long)
    pq = res.per_query
    has_gt = torch.tensor(pq["n_gt"].to_numpy() > 0)
    query_labels = labels[torch.tensor(pq["item"].to_numpy())]
    k = min(max_k, res.retrieved.shape[1])
    retrieved = res.retrieved[:, :k]
    # -1 pads rows that retrieved fewer than k items: never relevant.
    relevant = (labels[retrieved.clamp_min(0)] == query_labels[:, None]) & (retrieved >= 0)
    hit_by_k = relevant.cumsum(dim=1).clamp(max=1).float()[has_gt]
    curve = hit_by_k.mean(dim=0) if len(hit_by_k) else torch.zeros(k)
    return [{"k": i + 1, "cmc": float(curve[i])} for i in range(k)]


def write_validation(out_dir: Path, res, val_df: pd.DataFrame, baseline=None) -> dict:
    write_per_query(out_dir / "per_query.tsv", res, val_df)
    write_table(out_dir / "plots" / "cmc.tsv", ["k", "cmc"], cmc_curve(res, val_df, res.retrieved.shape[1]))
    if baseline is not None:  # the OML metrics of raw pixels (not validate.extra_metrics)
        raw = {m: v for m, v in baseline.to_json_dict()["overall"].items() if m not in EXTRA_METRICS}
        write_json(out_dir / "baseline.json", {"raw_pixels": raw})
    metrics = res.to_json_dict()
    write_json(out_dir / "metrics.json", metrics)  # last: exists only for a finished stage
    print(
        "validate: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics["overall"].items()),
        file=sys.stderr,
    )
    return metrics
