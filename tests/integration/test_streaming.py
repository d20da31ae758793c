"""Training on images decoded per batch: DataLoader workers change nothing, a resumed run included.

Runs ``reprokit.train.loop.train`` (Lightning, the label-balanced sampler, the built-in CNN) in
this process on a tiny dataset it writes (PNGs, bounding boxes on some rows): a few seconds each.
"""

import csv
import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from reprokit.core.config import config_from_dict
from reprokit.data.source import load_dataset
from reprokit.train import loop


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streaming") / "data"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [["label", "path", "split", "is_query", "is_gallery", "x_1", "x_2", "y_1", "y_2"]]
    for i in range(12 * 3):
        Image.fromarray(rng.integers(0, 256, (14, 18), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        box = ["1", "17", "2", "13"] if i % 4 == 0 else [""] * 4
        rows.append([str(i // 3), f"images/{i}.png", "train", "", "", *box])
    rows += [["99", f"images/{i}.png", "validation", "True", "True", "", "", "", ""] for i in (0, 1)]
    with open(root / "df.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


def _train(dataset: Path, out: Path, workers: int, epochs: int = 3, resume: bool = False):
    cfg = config_from_dict(
        {
            "data": {"dataframe": str(dataset / "df.csv"), "root": str(dataset), "generate": [], "image_size": 12},
            "model": {"name": "simple_cnn", "args": {"channels": [4], "embedding_dim": 8}},
            "train": {"epochs": epochs, "n_labels": 4, "n_instances": 2, "num_workers": workers, "resume": resume},
            "trainer": {"default_root_dir": str(out / "lightning")},
        }
    )
    df, paths, _ = load_dataset(cfg)
    stats, _ = loop.train(cfg, df, paths, out)
    weights = torch.load(out / "model.ckpt", weights_only=False)
    return stats, (out / "plots" / "step.tsv").read_bytes(), weights


def _same_weights(a, b) -> bool:
    sa, sb = a["state_dict"], b["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class _Interrupt(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise RuntimeError("interrupted")


def test_workers_train_exactly_as_the_main_process_also_after_a_resume(dataset, tmp_path, monkeypatch):
    """The reference trains 3 epochs in the main process; the other run, with 2 workers, is
    interrupted before its third epoch and resumed: the resumed run's first iterator (and the
    workers' prefetch) exists before any epoch hook runs."""
    monkeypatch.chdir(tmp_path)  # train.resume keeps its checkpoint under ./.reprokit
    stats0, steps0, model0 = _train(dataset, tmp_path / "w0", workers=0)

    make_trainer = loop.make_trainer
    monkeypatch.setattr(
        loop,
        "make_trainer",
        lambda trainer, train, logger, cbs: make_trainer(trainer, train, logger, [*cbs, _Interrupt()]),
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        _train(dataset, tmp_path / "w2", workers=2, resume=True)
    monkeypatch.setattr(loop, "make_trainer", make_trainer)
    assert list((tmp_path / ".reprokit" / "resume").glob("*/last.ckpt"))
    stats2, steps2, model2 = _train(dataset, tmp_path / "w2", workers=2, resume=True)
    assert stats2 == stats0 and steps2 == steps0 and _same_weights(model2, model0)
    assert os.listdir(tmp_path / ".reprokit" / "resume") == []  # finished: nothing left to resume
