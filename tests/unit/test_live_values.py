"""What a logger receives live while training is exactly what the mirror replays later.

The run-folder logger (the local truth) is fed the way Lightning feeds it; what it hands to the live
sink is compared with what the mirror's reader makes of the files it wrote: same tags, steps,
values and wall times, so a backend can tell a point that arrived live from one still missing.
Also: which pipeline run a training's logger run holds (``claim_fits``).
"""

from __future__ import annotations

import json

from reprokit.core.scalars import Scalar, epoch_tag, read_wall_times, step_tag
from reprokit.log.run_logger import RunFolderLogger
from reprokit.mirror.runfolder import read_run_folder

RUN_ID = "0123456789abcdef0123456789abcdef"


def _train_like_lightning(logger: RunFolderLogger, epochs: int = 2, steps: int = 3) -> None:
    """The calls Lightning makes: per-step values, then per epoch the validation's values (the
    epoch-end hook) and the epoch's own row at the epoch's last step."""
    step = 0
    for epoch in range(epochs):
        for i in range(steps):
            logger.log_metrics({"loss_step": 1.0 / (step + 1), "pos_dist_step": 0.1 * i, "epoch": epoch}, step=step)
            step += 1
        logger.log_epoch_values(epoch, {"val/cmc@1": 0.1 + 0.3 * epoch, "val/map@5": 1 / 3 + epoch / 7})
        logger.log_metrics({"loss_epoch": 0.5 / (epoch + 1), "epoch": epoch}, step=step - 1)
    logger.finalize("success")


def test_live_values_are_the_replayed_values(tmp_path):
    sent: list[tuple[list[Scalar], bool]] = []
    root = tmp_path / "runs" / "train"
    logger = RunFolderLogger(root, live=lambda scalars, epoch_end: sent.append((list(scalars), epoch_end)))
    _train_like_lightning(logger)
    (root / "run.json").write_text(json.dumps({"run_id": RUN_ID, "run_name": "run-01234567"}))

    live = [s for batch, _ in sent for s in batch]
    replayed = [s for s in read_run_folder(tmp_path / "runs").scalars if not s.tag.startswith("validate/")]
    assert sorted(live, key=lambda s: (s.step, s.tag)) == sorted(replayed, key=lambda s: (s.step, s.tag))
    # Validation while training keeps its name and its full float64 value, at the epoch's step.
    assert [s.value for s in live if s.tag == "val/map@5" and s.step == 2] == [1 / 3]
    assert {s.step for s in live if s.tag == "val/cmc@1"} == {2, 5}
    assert {s.step for s in live if s.tag == "train_epoch/loss"} == {2, 5}
    # Each epoch's row closes a batch (the sink flushes then); step values do not.
    assert [epoch_end for _, epoch_end in sent] == [False, False, False, True] * 2
    # Every value carries its wall time, also in the file the replay reads.
    wall = read_wall_times(root / "wall_times.tsv")
    assert set(wall) == {("step", s) for s in range(6)} | {("epoch", 0), ("epoch", 1)}
    assert all(s.wall_time is not None for s in live + replayed)


def test_the_curves_stay_deterministic_wall_times_go_beside_them(tmp_path):
    for name in ("a", "b"):
        _train_like_lightning(RunFolderLogger(tmp_path / name))
    for table in ("plots/step.tsv", "plots/epoch.tsv", "plots/validation.tsv"):
        assert (tmp_path / "a" / table).read_bytes() == (tmp_path / "b" / table).read_bytes()
    header = (tmp_path / "a" / "plots/validation.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["epoch", "step", "val/cmc@1", "val/map@5"]
    assert "wall_time" not in (tmp_path / "a" / "plots/epoch.tsv").read_text().splitlines()[0]


def test_tags_of_the_curves():
    assert (step_tag("loss"), epoch_tag("loss")) == ("train/loss", "train_epoch/loss")
    assert (step_tag("val/cmc@1"), epoch_tag("val/cmc@1")) == ("val/cmc@1", "val/cmc@1")
