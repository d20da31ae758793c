"""The training blocks of params.yaml (train.optimizer, scheduler, loss pml:, miner, augment; trainer's
accumulation and clipping): each bad value is one line naming its key, and each good one does what it says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ConfigError
from reprokit.train.augment import BatchAugmentation, batch_seed
from reprokit.train.embedding_module import EmbeddingModule
from reprokit.train.losses import build_loss
from reprokit.train.optim import build_optimizer, build_scheduler, param_groups, warmup_factor
from reprokit.train.pml_loss import pair_statistics

LABELS = torch.arange(8).repeat_interleave(4)  # 8 labels x 4 instances


def train_cfg(**train):
    return config_from_dict({"train": train}).train


def module(train: dict, model: dict | None = None, image_size: int = 16) -> EmbeddingModule:
    cfg = config_from_dict(
        {"train": train, "model": model or {"name": "simple_cnn", "args": {"channels": [4], "embedding_dim": 8}}}
    )
    return EmbeddingModule(cfg.model, cfg.train, 1, image_size, classes=LABELS * 10 + 3, seed=7)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = exc.value.one_line()
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            {"optimizer": {"name": "Adamw"}},
            "train.optimizer.name must be one of a class of torch.optim (ASGD, Adadelta, ",
        ),
        (
            {"optimizer": {"name": "AdamW", "args": {"momentum": 0.9}}},
            "train.optimizer.args.momentum must be an argument AdamW takes (lr, betas, eps, weight_decay",
        ),
        (
            {"scheduler": {"name": "CosineAnealingLR"}},
            "train.scheduler.name must be one of a class of torch.optim.lr_scheduler",
        ),
        (
            {"scheduler": {"name": "CosineAnnealingLR", "args": {"T_max": 3, "t0": 1}}},
            "train.scheduler.args.t0 must be an argument CosineAnnealingLR takes (T_max, eta_min",
        ),
        (
            {"scheduler": {"name": "ReduceLROnPlateau", "interval": "step"}},
            "train.scheduler.interval must be 'epoch' for ReduceLROnPlateau",
        ),
        (
            {"augment": [{"name": "RandomFlip"}]},
            "train.augment[0].name must be one of a class of kornia.augmentation (",
        ),
        (
            {"augment": [{"name": "RandomHorizontalFlip"}, {"name": "RandomResizedCrop", "args": {"size": [8, 8]}}]},
            "train.augment must keep the batch's shape [2, 1, 16, 16] (data.image_size 16)",
        ),
        (
            {"augment": [{"name": "RandomHorizontalFlip", "args": {"prob": 0.5}}]},
            "train.augment[0].args.prob must be an argument RandomHorizontalFlip takes",
        ),
        (
            {"loss": {"name": "pml:ArcFaceLos"}},
            "train.loss.name must be one of pml:<a class of pytorch_metric_learning.losses>",
        ),
        (
            {"loss": {"name": "pml:ArcFaceLoss", "args": {"num_classes": "auto", "embedding_size": "auto", "scal": 3}}},
            "train.loss.args.scal must be an argument pml:ArcFaceLoss takes; got 'scal'",
        ),
        (
            {
                "loss": {"name": "pml:ArcFaceLoss", "args": {"num_classes": 8, "embedding_size": 8}},
                "miner": {"name": "pml:MultiSimilarityMinr"},
            },
            "train.miner.name must be one of pml:<a class of pytorch_metric_learning.miners>",
        ),
        (
            {"loss": {"name": "pml:TripletMarginLoss"}, "miner": {"name": "pml:BatchHardMiner", "args": {"k": 1}}},
            "train.miner.args.k must be an argument pml:BatchHardMiner takes",
        ),
        (
            {"loss": {"name": "pml:TripletMarginLoss", "lr": 0.1}},
            "train.loss.lr must be null: train.loss.name 'pml:TripletMarginLoss' has no parameters of its own to train",
        ),
        ({"loss": {"name": "my_missing_losses:build"}}, "train.loss.name 'my_missing_losses:build': no module named"),
        (
            {"optimizer": {"name": "my_missing_optim:build"}},
            "train.optimizer.name 'my_missing_optim:build': no module named",
        ),
    ],
)
def test_a_bad_block_is_refused_when_built_in_one_line_naming_its_key(train, expected):
    with pytest.raises(ConfigError) as exc:
        module(train)
    assert one_line(exc).startswith(expected), one_line(exc)


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            {"miner": {"name": "pml:MultiSimilarityMiner"}},
            "train.miner must be null unless train.loss.name is a pml: loss (a miner's tuples are pytorch-metric-learning's "
            "indices_tuple); the built-in triplet mines with train.loss.args.miner (all or hard); got 'pml:MultiSimilarityMiner'",
        ),
        (
            {"loss": {"name": "pml:ArcFaceLoss", "args": {"margin": "auto"}}},
            "train.loss.args.margin must not be 'auto': only ",
        ),
        (
            {"loss": {"name": "pml:CosFaceLoss"}, "miner": {"name": "pml:BatchHardMiner", "args": {"p": "auto"}}},
            "train.miner.args.p must not be 'auto'",
        ),
        (
            {"lr": 0.1, "optimizer": {"name": "SGD", "args": {"lr": 0.01}}},
            "train.lr and train.optimizer.args.lr are both set (0.1 and 0.01)",
        ),
        (
            {"optimizer": {"name": "torch.optim.Adam"}},
            "train.optimizer.name must be a class name (e.g. AdamW) or 'module:callable'",
        ),
        (
            {"scheduler": {"name": "StepLR", "warmup_steps": -1}},
            "train.scheduler.warmup_steps must be an integer ≥ 0; got -1",
        ),
        ({"augment": {"name": "RandomHorizontalFlip"}}, "train.augment must be a list of"),
        ({"loss": {"name": "triplet", "lr": 0}}, "train.loss.lr must be null or a number > 0; got 0.0"),
    ],
)
def test_a_bad_block_is_refused_at_load_in_one_line(train, expected):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"train": train})
    assert one_line(exc).startswith(expected), one_line(exc)


@pytest.mark.parametrize("key", ["accumulate_grad_batches", "gradient_clip_val"])
def test_trainer_knobs_are_checked(key):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"trainer": {key: 0}})
    assert one_line(exc).startswith(f"trainer.{key} must be ")


def test_auto_that_cannot_be_resolved_is_one_line():
    cfg = train_cfg(loss={"name": "pml:ArcFaceLoss", "args": {"num_classes": "auto", "embedding_size": 8}})
    with pytest.raises(ConfigError) as exc:
        build_loss(cfg.loss, classes=None)
    assert one_line(exc).startswith(
        "train.loss.args.num_classes is 'auto' but the number of training labels is not known here"
    )


def test_auto_fills_classes_and_embedding_size_and_labels_are_numbered():
    m = module(
        {
            "loss": {"name": "pml:ArcFaceLoss", "args": {"num_classes": "auto", "embedding_size": "auto"}, "lr": 0.05},
            "miner": {"name": "pml:MultiSimilarityMiner", "args": {"epsilon": 0.1}},
        }
    )
    arcface = m.criterion.loss
    assert tuple(arcface.W.shape) == (8, 8)  # [embedding_size, num_classes]: 8 training labels, 8-d embeddings
    emb = torch.nn.functional.normalize(torch.randn(32, 8), dim=1).requires_grad_()
    loss, stats = m.criterion(emb, LABELS * 10 + 3)  # labels 3, 13, ..., 73 -> classes 0..7
    loss.backward()
    assert torch.isfinite(loss) and emb.grad is not None
    assert set(stats) == {"pos_dist", "neg_dist", "mined"} and 0 < stats["mined"] <= 1
    # The proxies train in a parameter group of their own with train.loss.lr.
    opt = m.configure_optimizers()
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(3e-3), 0.05]
    assert opt.param_groups[1]["params"] == [arcface.W]


def test_pair_statistics_over_the_mined_pairs():
    emb = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    labels = torch.tensor([0, 0, 1, 1])
    full = pair_statistics(emb, labels, None)
    assert full["pos_dist"] == pytest.approx((5.0 + 85**0.5) / 2, abs=1e-4)  # pairs (0,1) and (2,3): 5 and sqrt(36+49)
    triplets = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    mined = pair_statistics(emb, labels, triplets)
    assert mined["pos_dist"] == pytest.approx(5.0, abs=1e-4) and mined["neg_dist"] == pytest.approx(1.0, abs=1e-4)
    assert mined["mined"] == pytest.approx(1 / 8)  # 4 anchors x 1 positive x 2 negatives = 8 possible triplets


def test_shorthand_lr_and_weight_decay_fill_the_optimizer_args():
    cfg = train_cfg(lr=0.02, weight_decay=0.1, optimizer={"name": "SGD", "args": {"momentum": 0.9}})
    opt = build_optimizer(param_groups(nn.Linear(2, 2), None, cfg), cfg)
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.defaults["lr"], opt.defaults["weight_decay"], opt.defaults["momentum"]) == (0.02, 0.1, 0.9)


def test_warmup_scales_linearly_then_leaves_the_schedule_alone():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    cfg = train_cfg(lr=1.0, scheduler={"name": "StepLR", "args": {"step_size": 1, "gamma": 0.5}, "interval": "step"})
    opt = build_optimizer(param_groups(nn.Linear(2, 2), None, cfg), cfg)
    sched = build_scheduler(opt, cfg)
    assert sched["interval"] == "step" and isinstance(sched["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_a_user_optimizer_and_scheduler_by_module_callable(tmp_path, monkeypatch):
    (tmp_path / "my_optim.py").write_text(
        "import torch\n"
        "def build(params, lr):\n    return torch.optim.SGD(params, lr=lr)\n"
        "def schedule(optimizer, factor):\n    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=factor)\n"
    )
    monkeypatch.chdir(tmp_path)
    cfg = train_cfg(
        lr=None,
        optimizer={"name": "my_optim:build", "args": {"lr": 0.5}},
        scheduler={"name": "my_optim:schedule", "args": {"factor": 0.5}},
    )
    opt = build_optimizer(param_groups(nn.Linear(2, 2), None, cfg), cfg)
    assert isinstance(opt, torch.optim.SGD)
    build_scheduler(opt, cfg)
    assert opt.param_groups[0]["lr"] == 0.25


def test_augmentation_is_fixed_by_the_seed_and_the_batch_and_leaves_the_global_generator_alone():
    cfg = train_cfg(
        augment=[
            {"name": "RandomResizedCrop", "args": {"size": [16, 16], "scale": [0.5, 1.0]}},
            {"name": "RandomHorizontalFlip"},
            {"name": "RandomGaussianNoise", "args": {"p": 1.0}},
        ]
    )
    aug = BatchAugmentation(cfg.augment, seed=7, channels=1, image_size=16)
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    a = aug(images, epoch=0, batch_idx=3, rank=0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(100)  # whatever else draws in between does not change a batch's augmentation
    assert torch.equal(a, aug(images, epoch=0, batch_idx=3, rank=0))
    assert not torch.equal(a, aug(images, epoch=0, batch_idx=4, rank=0))
    assert not torch.equal(a, aug(images, epoch=1, batch_idx=3, rank=0))
    assert not torch.equal(a, images) and a.shape == images.shape
    assert len({batch_seed(7, e, b, r) for e in range(3) for b in range(50) for r in range(2)}) == 300


def test_a_training_step_logs_the_warmed_up_learning_rate(tmp_path):
    """A real two-epoch fit on random images: lr in the step table follows warm-up then the cosine."""
    import lightning.pytorch as pl

    from reprokit.log.run_logger import RunFolderLogger

    m = module(
        {
            "lr": 0.01,
            "scheduler": {"name": "CosineAnnealingLR", "args": {"T_max": 2}, "warmup_steps": 3},
            "augment": [{"name": "RandomHorizontalFlip"}],
        }
    )
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, LABELS * 10 + 3, torch.arange(32)), batch_size=8
    )
    logger = RunFolderLogger(tmp_path, epoch_keys=m.epoch_level_keys)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        accelerator="cpu",
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
    )
    trainer.fit(m, data)
    rows = (tmp_path / "plots" / "step.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    lrs = [float(r.split("\t")[header.index("lr")]) for r in rows[1:]]
    # 4 batches, 2 per optimiser step: 2 steps an epoch. Warm-up 1/3, 2/3 in epoch 0; cosine's half in epoch 1.
    assert lrs == pytest.approx([0.01 / 3, 0.02 / 3, 0.005, 0.005], rel=1e-5)


def test_the_loss_proxies_and_the_schedule_are_in_the_checkpoint_train_resume_continues(tmp_path):
    import lightning.pytorch as pl

    m = module(
        {
            "lr": 0.01,
            "scheduler": {"name": "StepLR", "args": {"step_size": 1}, "interval": "step"},
            "loss": {
                "name": "pml:ProxyAnchorLoss",
                "args": {"num_classes": "auto", "embedding_size": "auto"},
                "lr": 0.1,
            },
        }
    )
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, LABELS * 10 + 3, torch.arange(32)), batch_size=8
    )
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    before = m.criterion.loss.proxies.detach().clone()
    trainer.fit(m, data)
    assert not torch.equal(before, m.criterion.loss.proxies)  # the proxies trained
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert torch.equal(ckpt["state_dict"]["criterion.loss.proxies"], m.criterion.loss.proxies.detach())
    assert [g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]] == pytest.approx(
        [0.01 * 0.1**4, 0.1 * 0.1**4]
    )
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 4


def test_bf16_mixed_trains_on_the_cpu(tmp_path):
    """trainer.precision: bf16-mixed on a CPU: autocast in bfloat16, the loss finite, the weights float32."""
    import lightning.pytorch as pl

    m = module({"augment": [{"name": "RandomHorizontalFlip"}]})
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, LABELS * 10 + 3, torch.arange(32)), batch_size=8
    )
    before = [p.detach().clone() for p in m.model.parameters()]
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        precision="bf16-mixed",
    )
    trainer.fit(m, data)
    assert torch.isfinite(trainer.callback_metrics["loss_epoch"])
    assert all(p.dtype == torch.float32 for p in m.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, m.model.parameters()))
