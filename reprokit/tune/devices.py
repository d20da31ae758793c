"""GPUs for parallel trials: each trial its own ``CUDA_VISIBLE_DEVICES``, never a shared device.

With ``trainer.accelerator: cpu`` nothing is assigned. Otherwise the GPUs are those the controller
may see (its own ``CUDA_VISIBLE_DEVICES``, else every device torch counts); a trial takes
``trainer.devices`` of them, and ``--jobs`` is capped so that no two running trials share one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from reprokit.core.errors import SweepError

__all__ = ["DevicePool", "visible_gpus", "plan_jobs"]


def visible_gpus(env: Mapping[str, str] | None = None, count: Callable[[], int] | None = None) -> list[str]:
    """The GPU ids a trial may be given: ``CUDA_VISIBLE_DEVICES`` as the controller has it, else 0..n-1."""
    env = os.environ if env is None else env
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if count is None:

        def count() -> int:
            import torch  # only when a GPU accelerator is configured

            return torch.cuda.device_count()

    return [str(i) for i in range(count())]


def plan_jobs(jobs: int, accelerator: str, per_trial: int, gpus: list[str]) -> tuple[int, str | None]:
    """(jobs to run at once, a note when they were capped). CPU: ``jobs`` as asked."""
    if accelerator == "cpu":
        return jobs, None
    if not gpus:
        if accelerator == "auto":
            return jobs, None  # no GPU: trials run on the CPU
        raise SweepError(f"trainer.accelerator is {accelerator!r} but no GPU is visible (CUDA_VISIBLE_DEVICES / torch)")
    fit = len(gpus) // per_trial
    if fit < 1:
        raise SweepError(f"a trial needs trainer.devices={per_trial} GPUs; {len(gpus)} visible ({', '.join(gpus)})")
    if jobs > fit:
        return fit, f"--jobs {jobs} capped at {fit}: {len(gpus)} GPU(s), {per_trial} per trial, never shared"
    return jobs, None


class DevicePool:
    """Hands out disjoint sets of GPU ids to running trials and takes them back (CPU: empty sets)."""

    def __init__(self, gpus: list[str], per_trial: int) -> None:
        self.gpus = list(gpus)
        self.free = list(gpus)
        self.per_trial = per_trial

    def take(self) -> list[str]:
        if not self.gpus:
            return []
        if len(self.free) < self.per_trial:
            raise SweepError(f"no free GPU for another trial ({self.per_trial} needed, free: {self.free})")
        taken, self.free = self.free[: self.per_trial], self.free[self.per_trial :]
        return taken

    def give_back(self, devices: list[str]) -> None:
        self.free.extend(d for d in devices if d not in self.free)
