"""The train stage against a bare PyTorch loop doing the same steps.

Same data (the project's df.csv, decoded per batch), sampler, model, loss, optimiser, schedule,
augmentation and seed: the bare loop builds them with the same reprokit functions, then runs a
plain ``for batch in loader: forward, loss, backward, step`` with no Lightning, no logging, no
provenance and no validation. Each arm is a fresh process (imports included), timed at 1 and at N
epochs, so that wall = fixed + N x per-epoch splits into the fixed cost (imports, data checks,
provenance, start-up and the end's saving) and the per-epoch cost:

    fixed = (N x T1 - TN) / (N - 1),   per epoch = (TN - T1) / (N - 1)

Arms: the stage as `dvc repro` runs it (validation while training on, the default), the stage
with `train.validate_every_n_epochs: 0` (the same work as the bare loop), and the bare loop.
Cases: the default params (digits, the CNN, triplet) and `--hf`: a tiny random ViT saved with
save_pretrained (RGB), pml:ArcFaceLoss with a miner, AdamW, cosine with warm-up, two kornia
augmentations. Run on an otherwise idle machine (each arm is one process; run-to-run noise on a
shared 2-core box is about ±10 %).

    python benchmarks/bench_train.py              # both cases, 8 epochs
    python benchmarks/bench_train.py --epochs 4 --case digits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def hf_params(repo: Path) -> dict:
    """The case of the issue's integration test: a tiny ViT folder in the project, RGB images."""
    from tests.hf_models import save_tiny_vit

    save_tiny_vit(repo / "weights" / "tiny-vit")
    return {
        "data": {"image_mode": "RGB"},
        "model": {"name": "hf", "args": {"path": "weights/tiny-vit", "pooling": "cls"}, "head": {"dim": 32}},
        "train": {
            "lr": None,
            "optimizer": {"name": "AdamW", "args": {"lr": 1.0e-3, "weight_decay": 0.05}},
            "scheduler": {"name": "CosineAnnealingLR", "args": {"T_max": 8}, "warmup_steps": 10},
            "loss": {
                "name": "pml:ArcFaceLoss",
                "args": {"num_classes": "auto", "embedding_size": "auto"},
                "lr": 1.0e-2,
            },
            "miner": {"name": "pml:MultiSimilarityMiner", "args": {"epsilon": 0.1}},
            "augment": [
                {"name": "RandomResizedCrop", "args": {"size": [32, 32], "scale": [0.8, 1.0]}},
                {"name": "RandomHorizontalFlip"},
            ],
        },
    }


def bare_loop(params: str, epochs: int) -> None:
    """The bare arm, in its own process: prints JSON {"loss": last epoch's mean loss}."""
    import random

    import numpy as np
    import torch

    from reprokit.core.config import load_config
    from reprokit.data.images import ImageDataset, WorkerSeeder, image_loader
    from reprokit.data.sampler import LabelBalancedBatchSampler
    from reprokit.data.source import load_dataset, split_rows
    from reprokit.train.augment import BatchAugmentation
    from reprokit.train.losses import build_loss, loss_and_stats
    from reprokit.train.models import IMAGE_CHANNELS, build_model
    from reprokit.train.optim import build_optimizer, build_scheduler, param_groups, warmup_factor

    cfg = load_config(params)
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)
    df, paths, _ = load_dataset(cfg)
    train_df, train_paths = split_rows(df, paths, "train")
    channels, size, t = IMAGE_CHANNELS[cfg.data.image_mode], cfg.data.image_size, cfg.train
    model = build_model(cfg.model, channels, size)
    classes = torch.tensor(train_df["label"].to_numpy())
    loss_fn = build_loss(
        t.loss, t.miner, classes=classes, embedding_size=int(model(torch.zeros(2, channels, size, size)).shape[1])
    )
    optimizer = build_optimizer(param_groups(model, loss_fn, t), t)
    schedule = build_scheduler(optimizer, t)
    augment = BatchAugmentation(t.augment, cfg.seed, channels, size) if t.augment else None
    warmup = t.scheduler.warmup_steps if t.scheduler is not None else 0
    dataset = ImageDataset.from_frame(train_df, train_paths, size, cfg.data.image_mode)
    sampler = LabelBalancedBatchSampler(dataset.labels.numpy(), t.n_labels, t.n_instances, cfg.seed)
    loader = image_loader(dataset, sampler, t.num_workers, WorkerSeeder(cfg.seed), persistent=True)
    model.train()
    step, losses = 0, []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        losses = []
        for batch_idx, (images, labels, _) in enumerate(loader):
            if augment is not None:
                images = augment(images, epoch, batch_idx, 0)
            loss, _ = loss_and_stats("train.loss", loss_fn(model(images), labels), loss_fn)
            optimizer.zero_grad()
            loss.backward()
            factor = warmup_factor(step, warmup)
            rates = [g["lr"] for g in optimizer.param_groups]
            for g, r in zip(optimizer.param_groups, rates):
                g["lr"] = r * factor
            optimizer.step()
            for g, r in zip(optimizer.param_groups, rates):
                g["lr"] = r
            step += 1
            if schedule is not None and schedule["interval"] == "step":
                schedule["scheduler"].step()
            losses.append(loss.item())
        if schedule is not None and schedule["interval"] == "epoch":
            schedule["scheduler"].step()
    print(json.dumps({"loss": sum(losses) / len(losses)}))


def timed(cmd: list[str], repo: Path) -> tuple[float, str]:
    from tests.projects import subprocess_env

    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=subprocess_env())
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_case(name: str, epochs: int, tmp: Path) -> None:
    from tests.projects import make_project_copy, run, write_params

    repo = make_project_copy(tmp / name)
    overrides = hf_params(repo) if name == "hf" else {}
    write_params(repo, overrides)
    if name == "hf":  # the model folder is a dependency of the stages that build the model
        run(["reprokit", "deps", "--write"], repo)
    run(["dvc", "repro", "prepare"], repo)  # the data, once
    stage = [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train"]
    bare = [sys.executable, str(Path(__file__).resolve()), "--bare", "params.yaml"]
    walls: dict[str, dict[int, float]] = {}
    losses: dict[str, float] = {}
    for arm, validate_every in (("stage", 1), ("stage, no validation", 0), ("bare PyTorch loop", None)):
        walls[arm] = {}
        for n in (1, epochs):
            write_params(
                repo,
                {
                    **overrides,
                    "train": {
                        **overrides.get("train", {}),
                        "epochs": n,
                        **({"validate_every_n_epochs": validate_every} if validate_every is not None else {}),
                    },
                },
            )
            if validate_every is None:
                walls[arm][n], out = timed([*bare, "--epochs", str(n)], repo)
                losses[arm] = json.loads(out.strip().splitlines()[-1])["loss"]
            else:
                walls[arm][n], _ = timed(stage, repo)
                losses[arm] = json.loads((repo / "runs/train/metrics.json").read_text())["loss"]
    fixed = {arm: (epochs * w[1] - w[epochs]) / (epochs - 1) for arm, w in walls.items()}
    per_epoch = {arm: (w[epochs] - w[1]) / (epochs - 1) for arm, w in walls.items()}
    print(f"\ncase {name}: {epochs} epochs (wall of a fresh process; fixed and per-epoch from 1 and {epochs} epochs)")
    print(f"  {'arm':<22} {'1 epoch':>9} {f'{epochs} epochs':>10} {'fixed':>8} {'per epoch':>10} {'last loss':>10}")
    for arm, w in walls.items():
        print(
            f"  {arm:<22} {w[1]:8.1f}s {w[epochs]:9.1f}s {fixed[arm]:7.1f}s {per_epoch[arm]:9.2f}s {losses[arm]:10.4f}"
        )
    bare = "bare PyTorch loop"
    for arm in ("stage", "stage, no validation"):
        print(
            f"  {arm} / bare at {epochs} epochs: {walls[arm][epochs] / walls[bare][epochs]:.2f} "
            f"(per epoch {per_epoch[arm] / per_epoch[bare]:.2f}; fixed cost {fixed[arm] - fixed[bare]:+.1f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--case", choices=["digits", "hf", "both"], default="both")
    parser.add_argument("--bare", metavar="PARAMS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(args.bare, args.epochs)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="reprokit-bench-train-") as tmp:
        for case in ["digits", "hf"] if args.case == "both" else [args.case]:
            run_case(case, args.epochs, Path(tmp))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
