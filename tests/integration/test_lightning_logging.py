"""`reprokit.LightningModule` end to end: a user-written module trained by a real Trainer.

What is checked is what lands in the real logger's files: TensorBoard event files read back with
tensorboard's own ``EventAccumulator``, and the files reprokit writes beside a CSVLogger.
"""

from __future__ import annotations

import io
import statistics
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import reprokit
from reprokit.log.media import LogValueError

IMAGE_H, IMAGE_W = 12, 20
N_TRAIN, N_VAL, BATCH = 24, 20, 4  # 6 training steps and 5 validation batches per epoch
EPOCHS = 2


def _val_value(epoch: int, batch_idx: int) -> float:
    # Deliberately skewed so that mean, max and median of an epoch all differ.
    return float((batch_idx + 1) ** 2 + 100 * epoch)


class UserModule(reprokit.LightningModule):
    """What a user writes after reading Lightning's logging guide; only the base class differs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("some_value", self.global_step)
        self.log("train_loss", loss, prog_bar=True)
        if batch_idx == 0:
            image = torch.linspace(0, 1, 3 * IMAGE_H * IMAGE_W).reshape(3, IMAGE_H, IMAGE_W)  # CHW floats
            self.log("an_image", image)
            self.log("some_text", f"epoch {self.current_epoch}: hello")
            self.log_dict(
                {
                    "dict_scalar": 1.5,
                    "dict_image": np.full((IMAGE_H, IMAGE_W), 200, dtype=np.uint8),  # HW uint8
                    "dict_text": "from log_dict",
                }
            )
        return loss

    def validation_step(self, batch, batch_idx):
        value = torch.tensor(_val_value(self.current_epoch, batch_idx))
        self.log("val_value", value)  # reduced by the (batch-size weighted) mean
        self.log("val_value_max", value, reduce_fx=torch.max)
        self.log("val_value_median", value, reduce_fx=torch.median)  # not accepted by plain Lightning

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loaders() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VAL, 3, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    train = DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=BATCH)
    val = DataLoader(TensorDataset(x[N_TRAIN:], y[N_TRAIN:]), batch_size=BATCH)
    return train, val


def _fit(logger, root: Path) -> tuple[pl.Trainer, list[warnings.WarningMessage]]:
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=logger,
        default_root_dir=root,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    train, val = _loaders()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(UserModule(), train, val)
    return trainer, caught


def _expected_epoch(epoch: int) -> dict[str, float]:
    values = [_val_value(epoch, b) for b in range(N_VAL // BATCH)]
    return {"mean": statistics.fmean(values), "max": max(values), "median": statistics.median(values)}


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    logger = TensorBoardLogger(save_dir=root, name="user", version=0)
    trainer, caught = _fit(logger, root)
    acc = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return trainer, acc, caught


def _scalars(acc: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_per_step_scalar_is_the_global_step(tensorboard_run):
    _, acc, _ = tensorboard_run
    series = _scalars(acc, "some_value")
    steps = EPOCHS * N_TRAIN // BATCH
    assert sorted(series) == list(range(steps))
    assert all(value == step for step, value in series.items())


def test_validation_is_reduced_per_epoch_by_mean_max_and_custom_median(tensorboard_run):
    _, acc, _ = tensorboard_run
    for tag, how in (("val_value", "mean"), ("val_value_max", "max"), ("val_value_median", "median")):
        got = [e.value for e in sorted(acc.Scalars(tag), key=lambda e: e.step)]
        want = [_expected_epoch(epoch)[how] for epoch in range(EPOCHS)]
        assert got == pytest.approx(want), tag
    # The three reductions really differ, so the checks above cannot pass by accident.
    first = _expected_epoch(0)
    assert len({first["mean"], first["max"], first["median"]}) == 3


def test_images_arrive_with_their_size(tensorboard_run):
    _, acc, _ = tensorboard_run
    assert {"an_image", "dict_image"} <= set(acc.Tags()["images"])
    for tag in ("an_image", "dict_image"):
        events = acc.Images(tag)
        assert len(events) == EPOCHS  # logged at batch 0 of each epoch
        assert {(e.width, e.height) for e in events} == {(IMAGE_W, IMAGE_H)}


def test_text_arrives_as_text_summary(tensorboard_run):
    _, acc, _ = tensorboard_run
    events = acc.Tensors("some_text/text_summary")
    texts = [e.tensor_proto.string_val[0].decode() for e in sorted(events, key=lambda e: e.step)]
    assert texts == [f"epoch {epoch}: hello" for epoch in range(EPOCHS)]
    dict_text = acc.Tensors("dict_text/text_summary")
    assert dict_text[0].tensor_proto.string_val[0].decode() == "from log_dict"


def test_log_dict_scalar_and_prog_bar(tensorboard_run):
    trainer, acc, _ = tensorboard_run
    assert {e.value for e in acc.Scalars("dict_scalar")} == {1.5}
    assert "train_loss" in trainer.progress_bar_metrics
    assert "some_value" not in trainer.progress_bar_metrics  # only what asked for prog_bar


def test_tensorboard_needs_no_fallback_files(tensorboard_run):
    trainer, _, caught = tensorboard_run
    assert not any("cannot store images" in str(w.message) for w in caught)
    assert not list(Path(trainer.default_root_dir).rglob("media"))


def test_csv_logger_gets_files_and_one_warning(tmp_path):
    logger = CSVLogger(save_dir=tmp_path, name="user", version=0)
    _, caught = _fit(logger, tmp_path)
    media = Path(logger.log_dir) / "media"
    images = sorted(p.relative_to(media).as_posix() for p in (media / "images").rglob("*.png"))
    texts = sorted(p.relative_to(media).as_posix() for p in (media / "text").rglob("*.txt"))
    steps_per_epoch = N_TRAIN // BATCH
    logged_at = [epoch * steps_per_epoch for epoch in range(EPOCHS)]
    assert images == sorted(f"images/{k}/{s}.png" for k in ("an_image", "dict_image") for s in logged_at)
    assert texts == sorted(f"text/{k}/{s}.txt" for k in ("dict_text", "some_text") for s in logged_at)
    assert (media / "text" / "some_text" / f"{logged_at[1]}.txt").read_text() == "epoch 1: hello"
    from PIL import Image

    with Image.open(media / "images" / "an_image" / "0.png") as img:
        assert img.size == (IMAGE_W, IMAGE_H) and img.mode == "RGB"
    with Image.open(media / "images" / "dict_image" / "0.png") as img:
        assert img.mode == "L" and np.asarray(img).min() == 200
    fallback = [w for w in caught if "cannot store images or text" in str(w.message)]
    assert len(fallback) == 1, [str(w.message) for w in fallback]
    assert "CSVLogger" in str(fallback[0].message) and str(media) in str(fallback[0].message)
    # The scalars still reach the CSV file, the custom median included.
    metrics = (Path(logger.log_dir) / "metrics.csv").read_text()
    assert "val_value_median" in metrics and "some_value" in metrics


@pytest.mark.parametrize(
    "value, fragment",
    [
        (torch.tensor([1.0, 2.0]), "shape (2,), dtype torch.float32"),
        (torch.full((4, 4), float("nan")), "NaN"),
        (np.ones((4, 4), dtype=bool), "dtype bool"),
        (np.ones((4, 4), dtype=np.complex64), "dtype complex64"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "dtype object"),
        (torch.full((4, 4), 2.0), "[0, 1]"),
    ],
    ids=["1d-two-elements", "nan-image", "bool", "complex", "object", "float-out-of-range"],
)
def test_bad_values_raise_a_clear_error_inside_training(tmp_path, value, fragment):
    class Bad(UserModule):
        def training_step(self, batch, batch_idx):
            self.log("bad_key", value)
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    train, _ = _loaders()
    with pytest.raises(LogValueError) as info:
        trainer.fit(Bad(), train)
    message = str(info.value)
    assert "'bad_key'" in message and fragment in message


def test_custom_reduce_fx_in_training_step_gives_step_and_epoch_values(tmp_path):
    class Median(UserModule):
        def training_step(self, batch, batch_idx):
            # prog_bar passed positionally, as Lightning's signature allows.
            self.log("med", float(batch_idx) ** 2, True, reduce_fx=torch.median, on_step=True, on_epoch=True)
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            pass

    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    train, _ = _loaders()
    trainer.fit(Median(), train)
    squares = [float(i) ** 2 for i in range(N_TRAIN // BATCH)]  # 0, 1, 4, 9, 16, 25
    assert trainer.progress_bar_metrics["med_step"] == squares[-1]
    # torch.median takes the lower of the two middle values: 4, where the mean would be 9.17.
    assert trainer.progress_bar_metrics["med_epoch"] == 4.0


def test_csv_fallback_warns_again_for_a_new_logger(tmp_path):
    for run in ("a", "b"):
        logger = CSVLogger(save_dir=tmp_path / run, name="user", version=0)
        _, caught = _fit(logger, tmp_path / run)
        assert sum("cannot store images or text" in str(w.message) for w in caught) == 1, run
        del logger


class OneImagePerValidationBatch(UserModule):
    """Logs an image under one key in every validation batch: all at the same global step."""

    def validation_step(self, batch, batch_idx):
        self.log("val/batch", torch.full((1, 4, 4), batch_idx / 10.0))
        self.log("val/note", f"batch {batch_idx}")


@pytest.mark.parametrize("kind", ["tensorboard", "run_folder", "csv"])
def test_media_with_one_key_and_step_never_overwrite_each_other(kind, tmp_path):
    from reprokit.log.run_logger import RunFolderLogger

    logger = {
        "tensorboard": lambda: TensorBoardLogger(tmp_path / "tb", name="m"),
        "run_folder": lambda: RunFolderLogger(tmp_path / "rf"),
        "csv": lambda: CSVLogger(tmp_path / "csv", name="m"),
    }[kind]()
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=logger,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_train_batches=1,
    )
    train, val = _loaders()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(OneImagePerValidationBatch(), train, val)
    n_batches = N_VAL // BATCH
    if kind == "tensorboard":
        acc = EventAccumulator(str(logger.log_dir), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        images = [t for t in acc.Tags()["images"] if t.startswith("val/batch")]
        shades = {
            int(np.asarray(Image.open(io.BytesIO(acc.Images(t)[0].encoded_image_string))).flat[0]) for t in images
        }
        assert len(images) == n_batches and len(set(shades)) == n_batches
        assert len(acc.Tensors("val/note/text_summary")) == n_batches
    else:
        base = Path(logger.log_dir) / ("media" if kind == "csv" else "")
        assert len(list((base / "images" / "val" / "batch").glob("*.png"))) == n_batches
        texts = sorted(p.read_text() for p in (base / "text" / "val" / "note").glob("*.txt"))
        assert texts == sorted(f"batch {i}" for i in range(n_batches))


def test_reprokits_reducers_never_show_in_the_users_model(tensorboard_run, tmp_path):
    """The Metrics behind a custom reduce_fx are reprokit's machinery, not part of the user's network:
    not in the model summary, print(model), named_modules or the state dict; a checkpoint of the
    trained module loads strictly into a fresh one."""
    from lightning.pytorch.utilities.model_summary import ModelSummary

    trainer, _, _ = tensorboard_run
    model = trainer.lightning_module
    assert model._reprokit_reducers  # the custom medians were reduced by reprokit's Metrics ...
    summary = ModelSummary(model, max_depth=-1)
    assert summary.layer_names == ["net", "net.0", "net.1", "net.2"]  # ... which the summary does not list
    assert "_reprokit" not in str(summary) and "_reprokit" not in repr(model)
    assert not any("_reprokit" in name for name, _ in model.named_modules())
    assert not any("_reprokit" in key for key in model.state_dict())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    fresh = UserModule()
    fresh.load_state_dict(torch.load(path, weights_only=False)["state_dict"], strict=True)
    for a, b in zip(fresh.parameters(), model.parameters()):
        assert torch.equal(a, b)
