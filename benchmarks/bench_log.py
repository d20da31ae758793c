"""Benchmark: ``self.log`` of reprokit.LightningModule against Lightning's own, scalars only.

Two modules share one body (a 2-layer MLP on fixed random data) and differ only in their base
class. Each training step logs the same 10 scalars (5 floats, 5 0-d tensors). Both are trained for
the same number of steps with the same seed, alternately (A B, B A, A B, ...) so that machine load
drifts hit both alike. Reported, as medians over the repeats:

- ``fit``: wall time from the first training batch to the end of training (Trainer set-up excluded);
- ``fit cpu``: CPU time of the training thread over the same span (less sensitive to other
  processes on a shared machine than wall time);
- ``log``: wall time spent inside the 10 ``self.log`` calls of every step, summed over the run;

and the ratios reprokit / Lightning: of the medians, and the median of the per-repeat ratios (each
repeat runs both back to back, so a load change between repeats cancels out). The issue's budget:
``fit`` ratio <= 1.05.

Usage:
    python benchmarks/bench_log.py                        # 400 steps, 7 repeats, no logger
    python benchmarks/bench_log.py --steps 600 --repeats 9 --logger csv
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

N_SCALARS = 10


def _modules():
    import lightning.pytorch as pl
    import torch
    from torch import nn

    import reprokit

    class Body:
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
            self.log_seconds = 0.0

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            detached = loss.detach()
            start = time.perf_counter()
            for i in range(N_SCALARS // 2):
                self.log(f"float_{i}", float(batch_idx + i))
                self.log(f"tensor_{i}", detached + i)
            self.log_seconds += time.perf_counter() - start
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Plain(Body, pl.LightningModule):
        pass

    class Reprokit(Body, reprokit.LightningModule):
        pass

    return {"lightning": Plain, "reprokit": Reprokit}


class _Clock:
    """A callback timing the training loop only (first batch start to train end)."""

    def __new__(cls):
        import lightning.pytorch as pl

        class Clock(pl.Callback):
            def __init__(self) -> None:
                self.start = None
                self.seconds = 0.0
                self.cpu_seconds = 0.0

            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                if self.start is None:
                    self.start = (time.perf_counter(), time.thread_time())

            def on_train_end(self, trainer, module) -> None:
                self.seconds = time.perf_counter() - self.start[0]
                self.cpu_seconds = time.thread_time() - self.start[1]

        return Clock()


def run_once(module_cls, steps: int, logger_kind: str, root: str) -> dict[str, float]:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    pl.seed_everything(0, verbose=False)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 8, 16, generator=gen)
    loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    clock = _Clock()
    trainer = pl.Trainer(
        max_steps=steps,
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(root, name=module_cls.__name__) if logger_kind == "csv" else False,
        log_every_n_steps=1,
        default_root_dir=root,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[clock],
    )
    module = module_cls()
    trainer.fit(module, loader)
    return {"fit": clock.seconds, "fit cpu": clock.cpu_seconds, "log": module.log_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--logger", choices=["none", "csv"], default="none")
    args = parser.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread keeps both sides comparable
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    modules = _modules()
    metrics = ("fit", "fit cpu", "log")
    times: dict[str, dict[str, list[float]]] = {k: {m: [] for m in metrics} for k in modules}
    with tempfile.TemporaryDirectory() as root:
        run_once(modules["lightning"], 20, args.logger, root)  # warm-up: imports, allocator, caches
        run_once(modules["reprokit"], 20, args.logger, root)
        for r in range(args.repeats):
            order = ["lightning", "reprokit"] if r % 2 == 0 else ["reprokit", "lightning"]
            for name in order:
                for m, value in run_once(modules[name], args.steps, args.logger, root).items():
                    times[name][m].append(value)

    print(
        f"{args.steps} steps x {N_SCALARS} scalars per step, {args.repeats} interleaved repeats, "
        f"logger={args.logger}, torch threads=1"
    )
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in times.items()}
    print(f"{'':10s} {'fit s':>8s} {'fit cpu s':>10s} {'log s':>8s} {'us per self.log':>16s}  (medians)")
    for name in modules:
        per_call = med[name]["log"] / (args.steps * N_SCALARS) * 1e6
        print(
            f"{name:10s} {med[name]['fit']:8.3f} {med[name]['fit cpu']:10.3f} {med[name]['log']:8.3f} {per_call:16.1f}"
        )
    for m in metrics:
        of_medians = med["reprokit"][m] / med["lightning"][m]
        paired = statistics.median(a / b for a, b in zip(times["reprokit"][m], times["lightning"][m]))
        print(f"ratio reprokit/lightning {m:8s}: {of_medians:.3f} of medians, {paired:.3f} median of paired")
    print("budget: fit ratio <= 1.05")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
