"""Validation while training: validate's numbers at each epoch, the best epoch kept, nothing else changed.

Runs ``reprokit.train.loop.train`` (Lightning, the built-in CNN) in this process with the train
stage's validator (``reprokit.evaluate.scoring_in_training``) on a tiny dataset it writes: 20 training
labels, 10 validation labels of 3 noisy views each. On it the model over-fits within a few epochs,
so the best validated epoch comes before the last one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from reprokit.core.config import config_from_dict
from reprokit.data.source import load_dataset
from reprokit.evaluate.scoring import embed, score, validation_inputs
from reprokit.evaluate.scoring_in_training import TrainingValidator
from reprokit.train import loop
from reprokit.train.checkpoint import load_model

METRICS = ["cmc@1", "cmc@5", "precision@5", "map@5", "map@r", "r_precision"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("epoch_validation") / "data"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (30, 12, 12))
    rows = [["label", "path", "split", "is_query", "is_gallery"]]
    for i in range(90):
        label = i // 3
        img = np.clip(protos[label] + rng.normal(0, 60, (12, 12)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        split, flag = ("train", "") if label < 20 else ("validation", "True")
        rows.append([str(label), f"images/{i}.png", split, flag, flag])
    with open(root / "df.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


def _config(dataset: Path, out: Path, **train):
    return config_from_dict(
        {
            "data": {"dataframe": str(dataset / "df.csv"), "root": str(dataset), "generate": [], "image_size": 12},
            "model": {"name": "simple_cnn", "args": {"channels": [4], "embedding_dim": 8}},
            "train": {"epochs": 5, "n_labels": 4, "n_instances": 2, **train},
            "validate": {"batch_size": 7},  # several batches, the last one short
            "trainer": {"default_root_dir": str(out / "lightning")},
        }
    )


def _train(dataset: Path, out: Path, validate: bool = True, hooks=(), **train):
    cfg = _config(dataset, out, **train)
    df, paths, _ = load_dataset(cfg)
    validator = TrainingValidator(cfg, df, paths) if validate else None
    stats, _ = loop.train(cfg, df, paths, out, validator=validator, on_validation=hooks)
    # One frame: each epoch's row, with its val/<metric> values where it was validated.
    epochs = pd.read_csv(out / "plots" / "epoch.tsv", sep="\t")
    validated = pd.read_csv(out / "plots" / "validation.tsv", sep="\t")
    return cfg, stats, epochs.merge(validated, on=["epoch", "step"], how="left")


def _validate_stage_metrics(cfg, model_path: Path) -> dict[str, float]:
    """What the validate stage computes for a model file: its functions, its settings."""
    torch.use_deterministic_algorithms(True)
    df, paths, _ = load_dataset(cfg)
    model, _ = load_model(model_path)
    val_df, images = validation_inputs(cfg, df, paths)
    return score(
        cfg, val_df, embed(model, images, cfg.validate.batch_size, show_progress=False), show_progress=False
    ).overall


def test_validating_changes_nothing_and_gives_validates_numbers(dataset, tmp_path):
    cfg, stats, epochs = _train(dataset, tmp_path / "with")
    _, stats_without, epochs_without = _train(dataset, tmp_path / "without", validate=False)
    # Training itself is untouched: same steps, same weights (validation put every RNG state back).
    with_, without = tmp_path / "with", tmp_path / "without"
    assert (with_ / "plots/step.tsv").read_bytes() == (without / "plots/step.tsv").read_bytes()
    assert _weights(with_ / "model.ckpt") == _weights(without / "model.ckpt")
    assert stats == stats_without
    assert [c for c in epochs.columns if c.startswith("val/")] == sorted(f"val/{m}" for m in METRICS)
    assert not any(c.startswith("val/") for c in epochs_without.columns)
    assert (without / "plots/validation.tsv").read_text() == "epoch\tstep\n"  # a declared output, still written
    # The last epoch's values are exactly what the validate stage gives the saved (last) model.
    last = epochs.iloc[-1]
    assert _validate_stage_metrics(cfg, tmp_path / "with" / "model.ckpt") == {m: last[f"val/{m}"] for m in METRICS}


def _weights(path: Path) -> list[tuple[str, bytes]]:
    state = torch.load(path, weights_only=True)["state_dict"]
    return [(k, v.numpy().tobytes()) for k, v in state.items()]


def test_every_n_epochs_and_after_the_last(dataset, tmp_path):
    _, _, epochs = _train(dataset, tmp_path, validate_every_n_epochs=2)
    validated = epochs.loc[epochs["val/cmc@1"].notna(), "epoch"].tolist()
    assert validated == [1, 3, 4]
    # Only the validated epochs are rows of validation.tsv, with no empty cell (`dvc plots` would
    # draw one as a zero), and epoch.tsv holds no val/ column.
    header, *rows = (tmp_path / "plots/validation.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["1", "3", "4"] and all("" not in r.split("\t") for r in rows)
    assert "val/" not in (tmp_path / "plots/epoch.tsv").read_text()


def test_best_checkpoint_is_the_best_validated_epoch_and_validate_scores_it(dataset, tmp_path):
    cfg, stats, epochs = _train(dataset, tmp_path, checkpoint="best", monitor="map@5")
    best = int(epochs["val/map@5"].idxmax())  # the first epoch with the highest value
    assert best < len(epochs) - 1, "the best epoch is the last: this run cannot tell best from last"
    assert stats["best"] == {"epoch": int(epochs.loc[best, "epoch"]), "map@5": epochs.loc[best, "val/map@5"]}
    # model.ckpt is that epoch's model: the validate stage scores it at that epoch's values, every metric.
    assert _validate_stage_metrics(cfg, tmp_path / "model.ckpt") == {m: epochs.loc[best, f"val/{m}"] for m in METRICS}
    # and the loss statistics stay the final epoch's, as before.
    assert stats["loss"] == epochs["loss"].iloc[-1]


def test_a_validation_hook_can_stop_training(dataset, tmp_path):
    calls = []

    def prune(epoch, metrics):
        calls.append((epoch, dict(metrics)))
        return epoch == 1

    _, stats, epochs = _train(dataset, tmp_path, hooks=[prune])
    assert [e for e, _ in calls] == [0, 1] and list(epochs["epoch"]) == [0, 1]
    assert set(calls[0][1]) == set(METRICS)
    assert calls[1][1]["map@5"] == epochs.loc[1, "val/map@5"]
    assert (tmp_path / "model.ckpt").is_file() and stats["loss"] == epochs["loss"].iloc[-1]


class _Interrupt(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 3:
            raise RuntimeError("interrupted")


def test_a_resumed_training_keeps_its_best_epoch(dataset, tmp_path, monkeypatch):
    """Interrupted after the best epoch and resumed: the same model, curves and best record."""
    monkeypatch.chdir(tmp_path)  # train.resume keeps its checkpoint under ./.reprokit
    _, reference, ref_epochs = _train(dataset, tmp_path / "reference", checkpoint="best")

    make_trainer = loop.make_trainer
    monkeypatch.setattr(
        loop,
        "make_trainer",
        lambda trainer, train, logger, cbs: make_trainer(trainer, train, logger, [*cbs, _Interrupt()]),
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        _train(dataset, tmp_path / "resumed", checkpoint="best", resume=True)
    monkeypatch.setattr(loop, "make_trainer", make_trainer)
    _, resumed, epochs = _train(dataset, tmp_path / "resumed", checkpoint="best", resume=True)
    assert resumed == reference and resumed["best"]["epoch"] < 3
    pd.testing.assert_frame_equal(epochs, ref_epochs)
    assert _weights(tmp_path / "resumed" / "model.ckpt") == _weights(tmp_path / "reference" / "model.ckpt")
