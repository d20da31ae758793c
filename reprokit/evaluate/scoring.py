"""The validate stage's scoring: embedding the scored split, its retrieval metrics, the run folder's files.

The stage itself is :mod:`reprokit.pipeline.validate`; the same scoring while training is
:mod:`reprokit.evaluate.scoring_in_training`, called by :mod:`reprokit.train.validation_callback`.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import cast

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from reprokit.core.config import Config, TrainerConfig, ValidateConfig
from reprokit.core.errors import ConfigError
from reprokit.core.fileio import write_json, write_text
from reprokit.core.layout import ValidateDir
from reprokit.core.metric_names import EXTRA_METRICS
from reprokit.core.progress import progress
from reprokit.core.tables import write_table
from reprokit.data.images import ImageDataset, RawPixels, WorkerSeeder, image_loader
from reprokit.data.source import scored_rows
from reprokit.evaluate.gather import gather_for_metrics
from reprokit.evaluate.metrics import retrieval_metrics
from reprokit.evaluate.per_query import encode_floats, encode_ints, encode_paths

__all__ = [
    "embedding_device",
    "baseline_pixels",
    "embed",
    "embed_distributed",
    "score",
    "validation_inputs",
    "wants_distributed",
    "write_validation",
    "split_metrics",
    "category_rows",
    "write_category_table",
]


def validation_inputs(cfg: Config, df: pd.DataFrame, paths: list[Path]) -> tuple[pd.DataFrame, ImageDataset]:
    """The rows validate scores (``validate.split``: the validation split, or the tuning split) and their
    images as a dataset decoded batch by batch (no pixels held)."""
    val_df, val_paths = scored_rows(cfg, df, paths)
    return val_df, ImageDataset.from_frame(val_df, val_paths, cfg.data.image_size, cfg.data.image_mode)


def baseline_pixels(validate: ValidateConfig, images: ImageDataset) -> RawPixels:
    """Where the raw-pixel baseline's pixels are kept as the embedding pass decodes them: at most a
    quarter of ``validate.memory_budget_mb`` (the rest is the metrics' chunks), area-averaged to a
    smaller side when the full-size pixels of every image would not fit."""
    pixels = RawPixels(len(images), images.channels, images.size, validate.memory_budget_mb * 2**20 // 4)
    if pixels.side != images.size:
        print(
            f"validate: raw-pixel baseline at {pixels.side}x{pixels.side} (the {len(images)} images at "
            f"{images.size}x{images.size} exceed a quarter of validate.memory_budget_mb)",
            file=sys.stderr,
        )
    return pixels


def _batches(
    images: torch.Tensor | ImageDataset, batch_size: int, batch_ids, num_workers: int = 0, seed: int = 0, rank: int = 0
):
    """(images, labels, item indices) of the given batches (batch b: items b*batch_size, ...): slices of
    an in-memory tensor, or decoded by a DataLoader with ``num_workers`` workers, in order."""
    ranges = [range(b * batch_size, min((b + 1) * batch_size, len(images))) for b in batch_ids]
    if isinstance(images, torch.Tensor):
        return [(images[r.start : r.stop], None, torch.arange(r.start, r.stop)) for r in ranges]
    return image_loader(images, [list(r) for r in ranges], num_workers, WorkerSeeder(seed, rank))


def embedding_device(t: TrainerConfig) -> torch.device:
    """The device ``trainer.accelerator`` names for one process: validate embeds where train trained.

    ``auto`` takes a GPU when there is one. Asking for a GPU that is not there is one clear line.
    """
    wanted = t.accelerator
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator is {wanted!r} but this machine has no CUDA GPU", hint="use cpu or auto"
            )
        return torch.device("cuda")
    if wanted == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("trainer.accelerator is 'mps' but MPS is not available here", hint="use cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def _n_rows(n: int, batch_size: int, batch_ids) -> int:
    return sum(min((b + 1) * batch_size, n) - b * batch_size for b in batch_ids)


# No autograd graph: without it every batch's activations would be kept until the end.
@torch.inference_mode()
def _embed_batches(
    model: nn.Module,
    batches,
    n_rows: int,
    show: bool,
    pixels: RawPixels | None = None,
    device: torch.device | None = None,
):
    """Item indices and embeddings of the ``n_rows`` items of ``batches``, in their order, both on
    ``device`` (the model's device by default).

    Written into two tensors allocated once: per-batch outputs kept in a list until the end pin
    the heap between them, and the batches' transient activations then raised the RSS with every
    batch (about 0.5 GiB more at 33,000 RGB 64x64 images than at 3,300).
    """
    device = device if device is not None else next(model.parameters(), torch.empty(0)).device
    idx = torch.empty(n_rows, dtype=torch.long, device=device)
    out, pos = None, 0
    for x, _, index in progress(batches, "embedding", enabled=show):
        y = model(x.to(device))
        if out is None:
            out = torch.empty((n_rows, *y.shape[1:]), dtype=y.dtype, device=y.device)
        out[pos : pos + len(y)] = y
        idx[pos : pos + len(y)] = index
        pos += len(y)
        if pixels is not None:
            pixels.add(index, x)
    return idx, out if out is not None else torch.empty(0, 0, device=device)


def embed(
    model: nn.Module,
    images: torch.Tensor | ImageDataset,
    batch_size: int,
    show_progress: bool = True,
    *,
    num_workers: int = 0,
    seed: int = 0,
    pixels: RawPixels | None = None,
) -> torch.Tensor:
    """Embeddings of all images (a tensor, or a dataset decoded per batch by ``num_workers`` workers
    seeded from ``seed``), in order; ``pixels`` receives each batch's pixels as it goes."""
    n_batches = -(-len(images) // batch_size)
    batches = _batches(images, batch_size, range(n_batches), num_workers, seed)
    return _embed_batches(model, batches, len(images), show_progress, pixels)[1]


def wants_distributed(t: TrainerConfig) -> bool:
    return t.devices > 1 or t.num_nodes > 1 or t.strategy.startswith("ddp")


def embed_distributed(
    cfg: Config, model: nn.Module, images: torch.Tensor | ImageDataset, pixels: RawPixels | None = None
) -> tuple[torch.Tensor, bool]:
    """(all embeddings in order, is_global_zero) under Lightning Fabric with the ``trainer`` settings.

    Ranks share out whole batches (a DistributedSampler over batch ids) so every image is
    embedded in exactly the batch it would be in one process: bit-identical embeddings, hence
    identical metrics. The sampler's padding repeats a batch on some rank; the gather drops
    those repeats by item index. ``pixels`` (rank zero's: it scores the baseline) receives every
    image: those of its own batches as they are embedded, then the other ranks' ones, decoded again.
    """
    from lightning.fabric import (
        Fabric,  # Lightning's launcher: only paid for when asked for
    )

    t = cfg.trainer
    fabric = Fabric(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy)
    fabric.launch()
    # Embed and gather on this rank's device (NCCL gathers CUDA tensors, gloo CPU ones).
    model = model.to(fabric.device)
    bs, workers = cfg.validate.batch_size, cfg.validate.num_workers
    n_batches = -(-len(images) // bs)
    # The sampler only takes len() of its dataset; torch types it a Dataset.
    shard: DistributedSampler[int] = DistributedSampler(
        cast("Dataset[int]", range(n_batches)), num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=False
    )
    mine = list(shard)
    keep = pixels if fabric.is_global_zero else None
    idx, emb = _embed_batches(
        model,
        _batches(images, bs, mine, workers, cfg.seed, fabric.global_rank),
        _n_rows(len(images), bs, mine),
        fabric.is_global_zero,
        keep,
    )
    _, emb = gather_for_metrics(idx, emb)
    if keep is not None:
        others = sorted(set(range(n_batches)) - set(mine))
        for x, _, index in _batches(images, bs, others, workers, cfg.seed):
            keep.add(index, x)
    return emb, fabric.is_global_zero


def score(
    cfg: Config,
    val_df: pd.DataFrame,
    embeddings: torch.Tensor,
    show_progress: bool = True,
    extra_metrics: bool = True,
    by_category: bool = True,
    distributed: bool = False,
):
    """Retrieval metrics of the validation split with the ``validate`` settings.

    The dataframe's optional ``category`` and ``sequence`` columns are used as they are (a
    ``sequence`` cell is text; equal texts, empty ones included, are one sequence).
    ``extra_metrics=False`` leaves out ``validate.extra_metrics`` (the raw-pixel baseline);
    ``by_category=False`` the per-category averages (validation while training: overall only).
    ``distributed=True`` (every rank calls it with all the embeddings): each rank searches its share
    of the queries, every rank gets the whole result (see ``retrieval_metrics``). The search and the
    metrics run on the embeddings' device.
    """
    v = cfg.validate
    has_categories = by_category and "category" in val_df.columns
    categories = val_df["category"].astype(str).tolist() if has_categories else None
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
        distributed=distributed,
    )


def _fmt(x) -> str:
    return "" if pd.isna(x) else repr(float(x))


def write_per_query(path: Path, res, val_df: pd.DataFrame) -> None:
    """One row per query (format: reprokit.evaluate.per_query); items as rows of the validation split and paths."""
    pq = res.per_query.copy()
    val_paths = val_df["path"].to_numpy()
    pq.insert(1, "path", val_paths[pq["item"].to_numpy()])
    # The paths are the items' stable identity: another run's split may order its rows differently.
    paths = [encode_paths(val_paths[int(i)] for i in r if int(i) >= 0) for r in pq["retrieved"]]
    pq["retrieved"] = [encode_ints(r) for r in pq["retrieved"]]
    pq["distances"] = [encode_floats(r) for r in pq["distances"]]
    for name in res.metric_names:
        pq[name] = [_fmt(x) for x in pq[name]]
    pq["retrieved_paths"] = paths
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


def split_metrics(results: dict) -> tuple[dict, dict]:
    """``retrieval_metrics(...).to_json_dict()`` -> (headline, per category).

    The headline (``metrics.json``, what ``dvc exp show`` lists) holds the overall metrics and
    the query counts; the per-category numbers (``by_category.json``) would add a column per
    category and metric there.
    """
    headline = {k: v for k, v in results.items() if k != "by_category"}
    return headline, {"by_category": results.get("by_category", {})}


def category_rows(by_category: dict, metric_names: list[str]) -> list[dict]:
    """One row per category (sorted as in by_category.json): ``category`` then each metric."""
    return [{"category": cat, **{m: values.get(m) for m in metric_names}} for cat, values in by_category.items()]


def write_validation(out_dir: Path, res, val_df: pd.DataFrame, baseline=None) -> dict:
    """Write the validate stage's files; return the headline metrics (``metrics.json``)."""
    out = ValidateDir(out_dir)
    write_per_query(out.per_query, res, val_df)
    write_table(out.cmc, ["k", "cmc"], cmc_curve(res, val_df, res.retrieved.shape[1]))
    if baseline is not None:  # the OML metrics of raw pixels (not validate.extra_metrics)
        raw = {m: v for m, v in baseline.to_json_dict()["overall"].items() if m not in EXTRA_METRICS}
        write_json(out.baseline, {"raw_pixels": raw})
    metrics, by_category = split_metrics(res.to_json_dict())
    write_json(out.by_category, by_category)
    write_category_table(out.by_category_table, by_category["by_category"], list(metrics["overall"]))
    write_json(out.metrics, metrics)  # last: exists only for a finished stage
    return metrics


def write_category_table(path: Path, by_category: dict, metric_names: list[str]) -> None:
    """``category`` then the metrics in the order validate computes them; floats as their shortest
    round-trip repr (byte-identical for identical numbers); csv quoting for a category holding a tab."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["category", *metric_names])
    for row in category_rows(by_category, metric_names):
        writer.writerow([row["category"], *("" if row[m] is None else repr(float(row[m])) for m in metric_names)])
    write_text(path, buf.getvalue())
