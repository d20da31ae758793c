"""Image loading at real dataset sizes: peak memory and training throughput, streamed vs in memory.

For each size N it writes a dataset of N RGB 64x64 JPEGs in the OML format into a temporary folder
(4 views per label, a third of the labels for validation, every validation image a query and a
gallery item), then runs, each in a fresh process so its peak RSS is its own:

- ``train``: ``reprokit.train.loop.train`` (the train stage's function: Lightning, the label-balanced
  sampler, the default simple_cnn, batches of 32 x 4) for one epoch (``--steps`` caps it), with
  - ``memory``: the previous commit's path: every image decoded up front into one float32 tensor
    (``load_images``, kept unchanged, + ``ImageTensorDataset``), swapped in for ``ImageDataset``;
  - ``stream w0`` / ``stream w2``: images decoded per batch by the DataLoader, 0 or 2 workers;
- ``decode``: the same training batches (sampler, ``--steps``) through the same loaders, no model:
  what loading alone delivers (``memory``: its up-front decode included in wall);
- ``validate``: the validate stage's ``run`` (embedding, metrics, the raw-pixel baseline) with the
  model the streamed training wrote, ``memory`` (all images and the baseline's pixels at full
  size in memory, as before) or ``stream w0`` / ``stream w2``.

Columns: wall = the whole call (the up-front decode included); img/s = training images / wall;
steady img/s = from the end of the first batch to the end of the last (no start-up, no up-front
decode); peak RSS = the process' ru_maxrss (validate: also right after the embedding pass, which
decodes the images, before the metrics' chunks); workers = the largest total unique memory (USS,
sampled every 0.1 s) of its DataLoader workers. Not a timed test: the figures depend on the load.

    python benchmarks/bench_data.py --size 10000 --size 50000
    python benchmarks/bench_data.py --size 50000 --steps 100   # one capped epoch, on a loaded machine
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GIB = 1024**3
SIZE = 64
VIEWS = 4


def write_dataset(folder: Path, n: int, seed: int = 0) -> Path:
    """n RGB JPEGs (a random 8x8 colour pattern per label, upscaled, plus per-view noise) and df.csv."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    n_labels = n // VIEWS
    n_val = n_labels // 3
    rows = [["label", "path", "split", "is_query", "is_gallery"]]
    for label in range(n_labels):
        base = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((SIZE, SIZE), Image.BILINEAR)
        base = np.asarray(base, dtype=np.int16)
        val = label < n_val
        for v in range(VIEWS):
            noisy = np.clip(base + rng.normal(0, 60, base.shape), 0, 255).astype(np.uint8)
            rel = f"images/{label}_{v}.jpg"
            Image.fromarray(noisy).save(folder / rel, quality=90)
            rows.append([label, rel, "validation" if val else "train", "True" if val else "", "True" if val else ""])
    with open(folder / "df.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return folder / "df.csv"


def _params(folder: Path, workers: int) -> dict:
    return {
        "data": {
            "dataframe": str(folder / "df.csv"),
            "root": str(folder),
            "generate": [],
            "image_size": SIZE,
            "image_mode": "RGB",
        },
        "model": {"name": "simple_cnn"},
        "train": {"epochs": 1, "num_workers": workers, "log_every_n_steps": 10},
        "validate": {"num_workers": workers},
        "trainer": {"default_root_dir": str(folder / "lightning")},
    }


class _RssSampler(threading.Thread):
    """The largest sum of the child processes' (DataLoader workers') unique memory, sampled every 0.1 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self.me = psutil.Process()
        self.workers_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            total = 0
            for child in self.me.children(recursive=True):
                try:
                    total += child.memory_full_info().uss
                except Exception:  # a worker that just exited
                    pass
            self.workers_peak = max(self.workers_peak, total)


def _in_memory_dataset():
    """The previous commit's training input: all images decoded up front into one tensor."""
    import torch

    from reprokit.data.images import ImageTensorDataset, load_images

    class InMemory:
        @staticmethod
        def from_frame(df, paths, size, mode):
            images = load_images(df, paths, size, mode)
            return ImageTensorDataset(images, torch.tensor(df["label"].to_numpy(), dtype=torch.long))

    return InMemory


def child_train(folder: Path, loader: str, workers: int, steps: int | None) -> dict:
    import lightning.pytorch as pl

    from reprokit.core.config import config_from_dict
    from reprokit.data.source import load_dataset
    from reprokit.train import loop

    cfg = config_from_dict(_params(folder, workers))
    df, paths, _ = load_dataset(cfg, check_images=False)
    times: dict = {"images": 0, "first": None, "last": None}

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            now = time.monotonic()
            if times["first"] is None:
                times["first"] = now
            else:
                times["images"] += len(batch[0])
            times["last"] = now
            times["batches"] = batch_idx + 1
            times["batch_size"] = len(batch[0])

    make_trainer = loop.make_trainer

    def capped(trainer_cfg, train_cfg, logger, callbacks):
        trainer = make_trainer(trainer_cfg, train_cfg, logger, [*callbacks, Timer()])
        if steps:
            trainer.limit_train_batches = steps
        return trainer

    loop.make_trainer = capped
    if loader == "memory":
        loop.ImageDataset = _in_memory_dataset()
    sampler = _RssSampler()
    sampler.start()
    start = time.monotonic()
    loop.train(cfg, df, paths, folder / f"train-{loader}-{workers}")
    wall = time.monotonic() - start
    sampler.stop.set()
    trained = times["batches"] * times["batch_size"]
    return {
        "wall_s": wall,
        "images": trained,
        "img_s": trained / wall,
        "steady_img_s": times["images"] / (times["last"] - times["first"]),
        "rss_main_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "rss_workers_gib": sampler.workers_peak / GIB,
    }


def child_decode(folder: Path, loader: str, workers: int, steps: int | None) -> dict:
    import itertools

    from reprokit.core.config import config_from_dict
    from reprokit.data.images import ImageDataset, WorkerSeeder, image_loader
    from reprokit.data.sampler import LabelBalancedBatchSampler
    from reprokit.data.source import load_dataset, split_rows

    cfg = config_from_dict(_params(folder, workers))
    df, paths, _ = load_dataset(cfg, check_images=False)
    train_df, train_paths = split_rows(df, paths, "train")
    rss = _RssSampler()
    rss.start()
    start = time.monotonic()
    source = _in_memory_dataset() if loader == "memory" else ImageDataset
    dataset = source.from_frame(train_df, train_paths, cfg.data.image_size, cfg.data.image_mode)
    sampler = LabelBalancedBatchSampler(dataset.labels.numpy(), cfg.train.n_labels, cfg.train.n_instances, cfg.seed)
    sizes, first = [], None
    for x, _, _ in itertools.islice(image_loader(dataset, sampler, workers, WorkerSeeder(0)), steps):
        sizes.append(len(x))
        first = first or time.monotonic()
    end = time.monotonic()
    rss.stop.set()
    return {
        "wall_s": end - start,
        "images": sum(sizes),
        "img_s": sum(sizes) / (end - start),
        "steady_img_s": sum(sizes[1:]) / (end - first),
        "rss_main_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "rss_workers_gib": rss.workers_peak / GIB,
    }


def child_validate(folder: Path, loader: str, workers: int, model: Path) -> dict:
    import yaml

    from reprokit.core.config import load_config
    from reprokit.pipeline import validate

    params = folder / f"params-{loader}-{workers}.yaml"
    params.write_text(yaml.safe_dump(_params(folder, workers)))
    if loader == "memory":  # the previous commit's path: every image and the baseline's pixels in one tensor
        from reprokit.data.images import load_images
        from reprokit.data.source import split_rows

        def inputs(cfg, df, paths):
            val_df, val_paths = split_rows(df, paths, "validation")
            return val_df, load_images(val_df, val_paths, cfg.data.image_size, cfg.data.image_mode)

        class AllPixels:  # images.flatten(1): a view of the whole tensor
            def __init__(self, images):
                self.matrix = images.flatten(1)

            def add(self, index, x):
                pass

        validate.validation_inputs = inputs
        validate.baseline_pixels = lambda settings, images: AllPixels(images)
    embed, after_embedding = validate.embed, {}

    def measured_embed(*args, **kwargs):
        result = embed(*args, **kwargs)
        after_embedding["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return result

    validate.embed = measured_embed
    out = folder / f"validate-{loader}-{workers}"
    sampler = _RssSampler()
    sampler.start()
    start = time.monotonic()
    validate.run(load_config(params), model=model, out=out)
    wall = time.monotonic() - start
    sampler.stop.set()
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    baseline = json.loads((out / "baseline.json").read_text())["raw_pixels"]
    return {
        "wall_s": wall,
        "rss_main_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "rss_embedded_gib": after_embedding["rss"] / GIB,
        "rss_workers_gib": sampler.workers_peak / GIB,
        "cmc@1": metrics["cmc@1"],
        "baseline_cmc@1": baseline["cmc@1"],
    }


def _run_child(args: list[str], log: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    with open(log, "a") as fh:
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=fh, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, action="append", help="number of images (repeatable; default 10000, 50000)")
    parser.add_argument("--steps", type=int, help="cap the training epoch at this many batches")
    parser.add_argument("--skip", action="append", default=[], help="skip a run, e.g. 'validate memory 0'")
    parser.add_argument("--repeat", type=int, default=1, help="run every measurement this many times, interleaved")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # one measurement in this fresh process; JSON on stdout
        what, folder, loader, workers, extra = args.child
        if what == "train":
            res = child_train(Path(folder), loader, int(workers), int(extra) or None)
        elif what == "decode":
            res = child_decode(Path(folder), loader, int(workers), int(extra) or None)
        else:
            res = child_validate(Path(folder), loader, int(workers), Path(extra))
        print(json.dumps(res))
        return

    sizes = args.size or [10_000, 50_000]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}; "
        f"load average before: {load}"
    )
    header = (
        f"{'images':>7} {'stage':<9} {'loader':<10} {'wall s':>7} {'img/s':>7} {'steady img/s':>12} "
        f"{'peak RSS':>9} {'(embedded)':>10} {'workers':>8}  notes"
    )
    print(header)
    print("-" * len(header), flush=True)
    runs = [
        ("train", "memory", 0),
        ("train", "stream", 0),
        ("train", "stream", 2),
        ("decode", "memory", 0),
        ("decode", "stream", 0),
        ("decode", "stream", 2),
        ("validate", "memory", 0),
        ("validate", "stream", 0),
        ("validate", "stream", 2),
    ]
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-data-") as tmp:
        log = Path(tmp) / "children.log"
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            t0 = time.monotonic()
            write_dataset(folder, n)
            print(f"{n:>7} (dataset written in {time.monotonic() - t0:.0f} s)", flush=True)
            model = folder / "train-stream-0" / "model.ckpt"
            for stage, loader, workers in [r for _ in range(args.repeat) for r in runs]:
                if f"{stage} {loader} {workers}" in args.skip:
                    continue
                extra = str(model) if stage == "validate" else str(args.steps or 0)
                try:
                    r = _run_child([stage, str(folder), loader, str(workers), extra], log)
                except subprocess.CalledProcessError:
                    print(f"{n:>7} {stage:<9} {loader} w{workers}: failed (see below)")
                    print(log.read_text()[-3000:])
                    raise
                name = f"{loader} w{workers}" if loader == "stream" else loader
                if stage in ("train", "decode"):
                    rate, steady, notes = f"{r['img_s']:.0f}", f"{r['steady_img_s']:.0f}", f"{r['images']} images"
                    embedded = ""
                else:
                    rate, steady, embedded = "", "", f"{r['rss_embedded_gib']:.2f} GiB"
                    notes = f"cmc@1 {r['cmc@1']:.3f}, raw pixels {r['baseline_cmc@1']:.3f}"
                print(
                    f"{n:>7} {stage:<9} {name:<10} {r['wall_s']:>7.1f} {rate:>7} {steady:>12} "
                    f"{r['rss_main_gib']:>5.2f} GiB {embedded:>10} {r['rss_workers_gib']:>4.2f} GiB  {notes}",
                    flush=True,
                )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
