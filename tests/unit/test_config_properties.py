"""Property tests of the params.yaml schema: accepted means every stage's reader runs, rejected means one line.

Generated configs start from the project's ``params.yaml`` and change one to three keys to values
of the wrong type, out of range, on a boundary, or valid. Each is either

- rejected by ``config_from_dict`` with a ``ReprokitError`` whose single line names a changed key
  (or the key a cross-key rule ties it to), or
- accepted, and then every stage's reader of the config works with it: the digits generator's
  distortion (prepare), the label-balanced sampler, the triplet loss, the model, the optimiser and
  Lightning's Trainer (train), embedding and scoring with the validate section, the per-query
  table and the visualize metric lookup and figure (visualize), the logger registry and tags
  (mirror), and the resolved config written as an artifact reloads to the same config.

No training runs: each reader gets a tiny input. Anything else escaping (a TypeError, a KeyError,
a Lightning MisconfigurationException) fails the test.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from reprokit.core.config import (
    Config,
    ValidateConfig,
    config_from_dict,
    flatten,
    redact,
)
from reprokit.core.errors import ReprokitError
from reprokit.data.digits import distort
from reprokit.data.images import ImageTensorDataset, collate_batch
from reprokit.data.sampler import LabelBalancedBatchSampler
from reprokit.evaluate.scoring import (
    embed,
    score,
    wants_distributed,
    write_validation,
)
from reprokit.mirror import registry
from reprokit.mirror.tags import flat_tags, key_value_tags
from reprokit.train.augment import BatchAugmentation
from reprokit.train.loop import make_trainer, resume_dir
from reprokit.train.losses import build_loss, loss_and_stats
from reprokit.train.models import MODELS, build_model
from reprokit.train.optim import build_optimizer, build_scheduler, param_groups
from reprokit.visualize.worst_queries import (
    draw_worst_queries,
    read_per_query,
    worst_queries,
)
from tests.projects import PROJECT_ROOT

BASE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())

# --- values ------------------------------------------------------------------------------------
# For each key a pair (values in or on the edge of the range, values of the wrong type or outside
# it); a generated change takes from the first two times in three, so that enough configs are
# accepted to exercise the readers. Which values the schema accepts is for the test to find out.

WRONG_TYPE = st.sampled_from([None, True, False, "x", "", "3", "1e-3", [], [1], {}, {"a": 1}, 1.5])
BIG_INTS = st.sampled_from([2**31, 2**32, 2**63, -(2**63), 10**30])
ODD_FLOATS = st.sampled_from([-1e-12, 1e300, -1e300, math.nan, math.inf, -math.inf, 10**400])
Pair = tuple[st.SearchStrategy, st.SearchStrategy]


def ints(low: int, high: int, *edges: int) -> Pair:
    near = st.one_of(st.integers(low, min(high, low + 40)), st.sampled_from([low, low + 1, high - 1, high, *edges]))
    return near, st.one_of(st.sampled_from([low - 1, high + 1, 0, -1]), BIG_INTS, WRONG_TYPE)


def floats(low: float, high: float, *edges: float) -> Pair:
    near = st.one_of(st.floats(low, high), st.sampled_from([low, high, 0.0, *edges]), st.integers(int(low), int(high)))
    return near, st.one_of(st.floats(-10, 10), ODD_FLOATS, WRONG_TYPE)


def int_lists(*values: int) -> Pair:
    near = st.lists(st.sampled_from(values), max_size=4)
    bad_item = st.sampled_from([0, -1, None, "5", 1.5, True, 2**63])
    return near, st.one_of(st.lists(st.one_of(st.sampled_from(values), bad_item), min_size=1, max_size=4), WRONG_TYPE)


def small(pair: Pair) -> Pair:
    """Without the huge integers: for sizes whose huge values exhaust memory (not a schema matter)."""
    near, _ = pair
    return near, st.one_of(st.sampled_from([0, -1, -(2**63)]), WRONG_TYPE)


def texts(*values: Any) -> Pair:
    return st.sampled_from(list(values)), WRONG_TYPE


def either(near: st.SearchStrategy, bad: st.SearchStrategy) -> Pair:
    return near, bad


METRICS = [
    "cmc@1",
    "cmc@5",
    "cmc@2",
    "precision@5",
    "precision@1",
    "map@5",
    "map@10",
    "map@r",
    "r_precision",
    "mrr",
    "ap",
]
ODD_METRICS = ["map@0", "n_gt", "item", "label", "MAP@5", "", "map@", "cmc@01"]
TAGS = st.lists(st.sampled_from(["baseline", "digits", "é", "x" * 64]), max_size=3)
ODD_TAGS = st.lists(st.sampled_from(["", " ", "a,b", "x" * 65, 3, None]), min_size=1, max_size=3)

# Every leaf of params.yaml, with the values to try there. Resource-bound values (a model with
# millions of channels, thousands of CPU devices) are left out: accepting them is not a schema bug.
KEYS: dict[str, Pair] = {
    "seed": ints(0, 2**32 - 1, 42),
    "data.dataframe": either(
        st.sampled_from([None, "data/digits/df.csv", "other/df.csv"]), st.sampled_from(["", "  ", 3, [], True])
    ),
    "data.root": either(
        st.sampled_from([None, "data/digits", "images", "/abs/images"]), st.sampled_from(["", " ", 1, {}])
    ),
    "data.generate": either(
        st.sampled_from([["digits"], []]), st.sampled_from([["digits", "digits"], ["mnist"], "digits"])
    ),
    "data.allow_outside_root": texts(True, False),
    "data.label_map": either(st.sampled_from([None, "auto"]), st.sampled_from(["Auto", "sorted", "", 1, True])),
    "data.image_size": ints(8, 1024, 9, 15, 16, 17, 32, 33, 64),
    "data.image_mode": either(st.sampled_from(["L", "RGB"]), st.sampled_from(["l", "CMYK", "rgb", 1])),
    "data.digits.output": either(st.sampled_from(["data/digits", "data/other"]), st.sampled_from(["", " ", None, 1])),
    "data.digits.n_source": either(st.one_of(ints(10, 1797, 20, 30, 50, 240)[0], st.none()), ints(10, 1797)[1]),
    "data.digits.views": small(ints(2, 8, 4, 5)),
    "data.digits.image_size": ints(16, 256, 24, 32),
    "data.digits.rotation_deg": floats(0, 400, 180.0),
    "data.digits.scale": floats(0, 1, 0.999999, 1e-12),
    "data.digits.shift": floats(0, 2, 1e-12),
    "data.digits.noise": floats(0, 2, 1e-12),
    "data.digits.validation_fraction": floats(0, 1, 1e-6, 0.999999, 0.05, 0.95),
    "data.tune_fraction": floats(0, 1, 1e-6, 0.999999, 0.2, 0.5),
    "data.tune_seed": ints(0, 2**32 - 1, 7),
    # The project's own models:build (its args are checked when it is built) or the built-in.
    "model.name": either(
        st.sampled_from(["models:build", "simple_cnn"]), st.sampled_from(["resnet", "Simple_CNN", "", 1, None])
    ),
    "model.args.channels": either(
        st.one_of(
            st.lists(st.sampled_from([1, 2, 16, 32]), min_size=1, max_size=3),
            st.lists(st.sampled_from([1, 4, 8]), min_size=4, max_size=7),
        ),
        st.one_of(st.lists(st.sampled_from([1, 16, 0, -1, None, "5", 1.5, True]), min_size=1, max_size=4), WRONG_TYPE),
    ),
    "model.args.embedding_dim": small(ints(1, 64)),
    "model.args": either(
        st.sampled_from([{}, {"channels": [8]}, {"embedding_dim": 3}]),
        st.one_of(st.sampled_from([{"depth": 3}, {"channels": "wide"}]), WRONG_TYPE),
    ),
    # A weights file that exists or not is test_model_weights' (the model is built below): only null here.
    "model.weights": either(st.none(), st.sampled_from(["", " ", "w.txt", "model", 3, [], {}])),
    "model.head": either(
        st.sampled_from([None, {}, {"dim": 8}, {"dim": None, "normalize": False}, {"dim": 1, "normalize": True}]),
        st.sampled_from(
            [3, "x", [], {"dim": 0}, {"dim": -1}, {"dim": 2**17}, {"dim": 1.5}, {"dims": 4}, {"normalize": "yes"}]
        ),
    ),
    "model.freeze_batchnorm": texts(True, False),
    "train.loss.args": either(
        st.sampled_from([{}, {"margin": 0.1}, {"miner": "hard"}]),
        st.one_of(st.sampled_from([{"p": 2}, {"margin": "big"}]), WRONG_TYPE),
    ),
    "train.epochs": ints(1, 10),
    "train.n_labels": ints(2, 40, 161, 500, 512, 513, 1000, 1205),
    "train.n_instances": ints(2, 6, 4),
    "train.lr": either(st.one_of(floats(0, 1, 1e-12, 1e-3)[0], st.none()), floats(0, 1)[1]),
    "train.weight_decay": either(st.one_of(floats(0, 1, 1e-12)[0], st.none()), floats(0, 1)[1]),
    "train.loss.name": either(
        st.sampled_from(["triplet", "pml:TripletMarginLoss", "pml:ArcFaceLoss"]),
        st.sampled_from(["contrastive", "Triplet", "", 1, None, "pml:", "a b"]),
    ),
    "train.loss.lr": either(st.one_of(floats(0, 1, 1e-12)[0], st.none()), floats(0, 1)[1]),
    # Library names are resolved when the block is built (a well-formed unknown name is a unit test's).
    "train.optimizer.name": either(
        st.sampled_from(["Adam", "AdamW", "SGD", "RMSprop"]),
        st.sampled_from(["", "a b", "1x", 1, None, [], "torch.optim.Adam"]),
    ),
    "train.optimizer.args": either(
        st.sampled_from([{}, {"eps": 1e-8}, {"lr": 0.01}, {"weight_decay": 0.01}]),
        st.one_of(st.sampled_from([{1: 2}, {"eps": {1: 2}}]), WRONG_TYPE),
    ),
    "train.scheduler": either(
        st.sampled_from(
            [
                None,
                {"name": "CosineAnnealingLR", "args": {"T_max": 4}},
                {"name": "ConstantLR"},
                {"name": "StepLR", "args": {"step_size": 2}, "interval": "step", "warmup_steps": 3},
                {"name": "ReduceLROnPlateau"},
                {"name": "LinearLR", "warmup_steps": 0},
            ]
        ),
        st.sampled_from(
            [
                "x",
                3,
                [],
                {"name": ""},
                {"name": "StepLR", "interval": "batch"},
                {"warmup_steps": -1},
                {"name": "StepLR", "warmup": 3},
            ]
        ),
    ),
    "train.miner": either(
        st.sampled_from(
            [None, {"name": "pml:MultiSimilarityMiner", "args": {"epsilon": 0.1}}, {"name": "pml:TripletMarginMiner"}]
        ),
        st.sampled_from(["x", 3, {"name": ""}, {"name": "pml:BatchHardMiner", "args": {"x": "auto"}}]),
    ),
    "train.augment": either(
        st.sampled_from(
            [
                [],
                [{"name": "RandomHorizontalFlip"}],
                [
                    {"name": "RandomResizedCrop", "args": {"size": [32, 32], "scale": [0.8, 1.0]}},
                    {"name": "RandomHorizontalFlip", "args": {"p": 0.5}},
                ],
            ]
        ),
        st.sampled_from(["x", 3, [3], [{"name": 1}], [{"name": ""}], {"name": "RandomHorizontalFlip"}]),
    ),
    "train.loss.args.margin": floats(0, 2, 1e-12),
    "train.loss.args.miner": either(st.sampled_from(["all", "hard"]), st.sampled_from(["semi", "ALL", None])),
    "train.num_workers": small(ints(0, 4)),
    "train.resume": texts(True, False),
    "train.log_every_n_steps": ints(1, 50),
    "train.validate_every_n_epochs": ints(0, 10),
    "train.checkpoint": either(st.sampled_from(["last", "best"]), st.sampled_from(["Best", "first", "", 1, None])),
    "train.monitor": either(st.sampled_from(METRICS), st.one_of(st.sampled_from(ODD_METRICS), WRONG_TYPE)),
    "validate.batch_size": ints(1, 300, 7),
    "validate.distance": either(st.sampled_from(["euclidean", "cosine"]), st.sampled_from(["manhattan", "Euclidean"])),
    "validate.cmc_top_k": int_lists(1, 5, 2, 10, 20, 2**40),
    "validate.precision_top_k": int_lists(1, 5, 3, 50),
    "validate.map_top_k": int_lists(1, 5, 10, 100),
    "validate.memory_budget_mb": ints(1, 2048),
    "validate.num_workers": small(ints(0, 4)),
    "validate.split": either(
        st.sampled_from(["validation", "tune"]), st.sampled_from(["val", "train", "Tune", 1, None])
    ),
    "visualize.metric": either(st.sampled_from(METRICS), st.one_of(st.sampled_from(ODD_METRICS), WRONG_TYPE)),
    "visualize.n_queries": ints(1, 20),
    "visualize.top_k": ints(1, 30, 2**40),
    "visualize.n_ground_truth": ints(0, 20),
    "visualize.gradcam_layer": either(
        st.sampled_from([None, "features.8", "body.0", "layer4"]),
        st.sampled_from(["", "features.", ".8", "a b", "features..8", 8, []]),
    ),
    "logger.name": either(
        st.sampled_from(["tensorboard", "csv", "mlflow", "clearml", "wandb"]),
        st.sampled_from(["neptune", "tensorbord", "TensorBoard", 1]),
    ),
    "logger.args": either(
        st.sampled_from([{}, {"log_dir": "logs/x"}, {"a": {"b": [1]}}]),
        st.one_of(st.sampled_from([{1: "x"}, {None: 1}]), WRONG_TYPE),
    ),
    "logger.strict": texts(True, False),
    "logger.timeout_s": floats(0, 120, 1e-12),
    "logger.sweep.name": either(
        st.sampled_from([None, "lr_margin", "a-1.b"]), st.sampled_from(["", "a/b", "-x", 3, "x" * 65])
    ),
    "logger.sweep.trial": either(st.one_of(st.none(), st.integers(0, 100)), st.sampled_from([-1, "3", 1.5, True])),
    # gpu/cuda/mps are accepted but need the hardware: not generated on a CPU-only machine.
    "trainer.accelerator": either(st.sampled_from(["cpu", "auto"]), st.sampled_from(["tpu", "CPU", "hpu", ""])),
    "trainer.devices": ints(1, 3),
    "trainer.num_nodes": ints(1, 3),
    "trainer.strategy": either(
        st.sampled_from(["auto", "ddp"]), st.sampled_from(["ddp_spawn", "ddp_fork", "fsdp", "dp", "single_device"])
    ),
    "trainer.precision": either(
        st.sampled_from(["32-true", "64-true", "16-mixed", "bf16-mixed", "bf16-true"]),
        st.sampled_from(["16-true", "32", 32, "transformer-engine", "16"]),
    ),
    "trainer.accumulate_grad_batches": ints(1, 8),
    "trainer.gradient_clip_val": either(st.one_of(floats(0, 10, 1e-12)[0], st.none()), floats(0, 10)[1]),
    "trainer.gradient_clip_algorithm": either(
        st.sampled_from(["norm", "value"]), st.sampled_from(["l2", "Norm", 1, None])
    ),
    "trainer.default_root_dir": either(st.sampled_from(["runs/train", "elsewhere"]), st.sampled_from(["", " ", None])),
    "tags": either(TAGS, st.one_of(ODD_TAGS, WRONG_TYPE)),
}
if "extra_metrics" in {f.name for f in dataclasses.fields(ValidateConfig)}:  # added by a sibling change
    KEYS["validate.extra_metrics"] = either(
        st.lists(st.sampled_from(["map@r", "r_precision", "mrr", "ap"]), max_size=4, unique=True),
        st.one_of(st.lists(st.sampled_from(["map@r", "bogus", "", 5, None]), min_size=1, max_size=4), WRONG_TYPE),
    )

# A changed key may be reported under the key a cross-key rule ties it to.
RELATED: dict[str, set[str]] = {
    "validate.cmc_top_k": {"visualize.metric", "train.monitor"},
    "validate.precision_top_k": {"visualize.metric", "train.monitor"},
    "validate.map_top_k": {"visualize.metric", "train.monitor"},
    "validate.extra_metrics": {"visualize.metric", "train.monitor"},
    "train.checkpoint": {"train.monitor"},
    "train.validate_every_n_epochs": {"train.checkpoint"},
    "model.name": {"model.args", "data.image_size"},
    "model.args.channels": {"data.image_size"},
    "model.args": {"data.image_size"},
    "data.dataframe": {"train.n_labels", "train.n_instances", "data.generate"},
    "data.generate": {"data.dataframe"},
    "data.digits.output": {"data.generate", "data.dataframe"},
    "data.digits": {"data.generate", "data.dataframe"},
    "data.digits.validation_fraction": {"train.n_labels"},
    "data.digits.views": {"train.n_instances"},
    "train.n_labels": {"train.n_labels × train.n_instances"},
    "train.n_instances": {"train.n_labels × train.n_instances"},
    "train.loss.args.miner": {"train.n_labels × train.n_instances"},
    "train.loss.args": {"train.n_labels × train.n_instances"},
    "data.tune_fraction": {"train.n_labels", "validate.split"},
    "validate.split": {"data.tune_fraction"},
    "data.digits.n_source": {"train.n_labels", "data.digits.validation_fraction", "data.tune_fraction"},
    "logger.sweep.name": {"logger.sweep.trial"},
    "train.lr": {"train.optimizer.args"},
    "train.weight_decay": {"train.optimizer.args"},
    "train.optimizer.args": {"train.lr", "train.weight_decay"},
    "train.loss.name": {"train.miner"},
    "train.miner": {"train.loss.name"},
}
SECTIONS = [
    "data",
    "data.digits",
    "model",
    "model.args",
    "train",
    "train.loss",
    "train.loss.args",
    "train.optimizer",
    "validate",
    "visualize",
    "logger",
    "logger.sweep",
    "trainer",
]


def set_key(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        if p not in data:
            data[p] = {}  # a section params.yaml leaves at its defaults (commented out)
        if not isinstance(data.get(p), dict):
            return  # an earlier change replaced this section: nothing to set
        data = data[p]
    data[leaf] = value


@st.composite
def changed_configs(draw) -> tuple[dict, set[str]]:
    """(raw params, the dotted keys changed): values at one to three keys, maybe an unknown key or a bad section."""
    raw = copy.deepcopy(BASE)
    changed: set[str] = set()
    n_keys = draw(st.sampled_from([1, 1, 2, 3]))
    for key in draw(st.lists(st.sampled_from(sorted(KEYS)), min_size=n_keys, max_size=n_keys, unique=True)):
        near, bad = KEYS[key]
        set_key(raw, key, draw(st.one_of(near, near, bad)))
        changed.add(key)
    extra = draw(st.sampled_from(["none"] * 10 + ["unknown_key", "bad_section"]))
    if extra == "unknown_key":
        section = draw(st.sampled_from(SECTIONS + [""]))
        name = draw(st.sampled_from(["epoch", "lr_", "Metric", "extra"]))
        dotted = f"{section}.{name}" if section else name
        set_key(raw, dotted, 1)
        changed.add(dotted)
    elif extra == "bad_section":
        section = draw(st.sampled_from(SECTIONS))
        set_key(raw, section, draw(st.sampled_from(["x", [], 3, [{"a": 1}]])))
        changed.add(section)
    return raw, changed


def names_a_changed_key(message: str, changed: set[str]) -> bool:
    keys = set(changed)
    for key in changed:
        keys |= RELATED.get(key, set())
        keys |= {k for k in RELATED if k.startswith(key + ".")}  # a replaced section: any key in it
        keys |= {k for k in KEYS if k.startswith(key + ".")}
    for key in keys:
        # The key itself, an item of it ("validate.cmc_top_k[1]") or an unknown key quoted in it.
        if re.search(rf"(^|[\s'(]){re.escape(key)}([\s'\[;:.]|$)", message):
            return True
    return False


# --- the stages' readers -----------------------------------------------------------------------

N_VAL_LABELS, VIEWS = 5, 3


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread is fastest, and much faster when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A tiny validation split on disk: 5 labels x 3 views of 12x12 PNGs (for the visualize figure)."""
    root = tmp_path_factory.mktemp("config_props")
    rng = np.random.default_rng(0)
    for i in range(N_VAL_LABELS * VIEWS):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def val_split(root: Path) -> tuple[pd.DataFrame, list[Path]]:
    n = N_VAL_LABELS * VIEWS
    df = pd.DataFrame(
        {
            "label": np.repeat(np.arange(N_VAL_LABELS), VIEWS),
            "path": [f"{i}.png" for i in range(n)],
            "split": "validation",
            "is_query": True,
            "is_gallery": [i % VIEWS != 2 for i in range(n)],  # some queries are not gallery items
            "category": [str(i % 2) for i in range(n)],
        }
    )
    return df, [root / p for p in df["path"]]


@functools.cache
def _trainer_builds(trainer_cfg, epochs: int, log_every_n_steps: int) -> None:
    """Lightning's Trainer accepts the trainer section (cached: building one costs tens of ms)."""
    from reprokit.log.run_logger import RunFolderLogger

    cfg = config_from_dict({})
    cfg = dataclasses.replace(
        cfg,
        trainer=trainer_cfg,
        train=dataclasses.replace(cfg.train, epochs=epochs, log_every_n_steps=log_every_n_steps),
    )
    with tempfile.TemporaryDirectory() as tmp:
        make_trainer(cfg.trainer, cfg.train, RunFolderLogger(tmp), callbacks=[])


_VALIDATED: set = set()


def _validate_then_visualize(cfg: Config, root: Path) -> None:
    """validate and visualize read only their own sections: once per distinct pair (writing the
    run folder and drawing the figure cost tens of ms)."""
    if (cfg.validate, cfg.visualize) in _VALIDATED:
        return
    # validate: embed in batches, score, write the run folder (per_query.tsv, CMC curve, metrics).
    val_df, paths = val_split(root)
    images = torch.rand(len(val_df), 4, generator=torch.Generator().manual_seed(0))
    embeddings = embed(torch.nn.Identity(), images, cfg.validate.batch_size, show_progress=False)
    assert torch.equal(embeddings, images)
    res = score(cfg, val_df, embeddings, show_progress=False)
    assert set(cfg.validate.metric_names()) <= set(res.overall)
    out_dir = root / "validate"
    write_validation(out_dir, res, val_df)

    # visualize: rank by the configured metric, draw the figure.
    pq = read_per_query(out_dir / "per_query.tsv")
    assert len(worst_queries(pq, cfg.visualize.metric, cfg.visualize.n_queries)) >= 1
    assert draw_worst_queries(pq, val_df, paths, cfg.visualize, root / "worst.png") >= 1
    _VALIDATED.add((cfg.validate, cfg.visualize))


def built_or_refused(build, may_refuse: bool, *keys: str):
    """What ``build`` returns; or None when it refuses in one line naming one of ``keys`` — allowed only
    where ``may_refuse`` (arguments a library checks when the block is built, not the schema)."""
    try:
        return build()
    except ReprokitError as exc:
        message = exc.one_line()
        assert may_refuse and "\n" not in message and any(k in message for k in keys), message
        return None


def exercise_stage_readers(cfg: Config, root: Path) -> None:
    # The resolved config (runs/train/artifacts/config.yaml) reloads to the same config.
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    yaml.safe_dump(redact(cfg.to_dict()))
    flatten(cfg.to_dict())
    resume_dir(cfg.seed, cfg.data, cfg.model, cfg.train, cfg.trainer)

    # prepare: one distorted view; both splits of the generated labels are non-empty.
    digits = cfg.data.digits
    view = distort(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), digits, np.random.default_rng(cfg.seed))
    assert view.shape == (digits.image_size, digits.image_size) and view.dtype == np.uint8
    n_train, n_val = digits.split_sizes()
    assert n_train >= 1 and n_val >= 1

    # train: the sampler over the training labels (the embedded dataset's when it is used).
    t = cfg.train
    if cfg.data.dataframe is None:
        labels = np.repeat(np.arange(n_train), digits.views)
    else:  # the user's data decides (the sampler's own check); here a dataset that fits the batch
        labels = np.repeat(np.arange(t.n_labels), t.n_instances)
    sampler = LabelBalancedBatchSampler(labels, t.n_labels, t.n_instances, cfg.seed)
    sampler.set_epoch(0)
    batch = next(iter(sampler))
    assert len(batch) == t.n_labels * t.n_instances and len(set(labels[batch].tolist())) == t.n_labels
    torch.utils.data.DataLoader(
        ImageTensorDataset(torch.zeros(len(labels), 1, 1, 1), torch.as_tensor(labels)),
        batch_sampler=sampler,
        collate_fn=collate_batch,
        num_workers=t.num_workers,
        persistent_workers=t.num_workers > 0,
    )
    loss_fn = None
    if len(batch) <= 256:
        emb = torch.nn.functional.normalize(torch.randn(len(batch), 8), dim=1).requires_grad_()
        # A pml: loss's args are pytorch-metric-learning's: checked when it is built (one line naming the key).
        loss_fn = built_or_refused(
            lambda: build_loss(t.loss, t.miner, classes=torch.as_tensor(labels), embedding_size=8),
            t.loss.name.startswith("pml:"),
            "train.loss",
            "train.miner",
        )
        if loss_fn is not None:
            loss, _ = loss_and_stats("train.loss", loss_fn(emb, torch.as_tensor(labels[batch])), loss_fn)
            assert math.isfinite(loss.item())
    in_channels = 1 if cfg.data.image_mode == "L" else 3
    try:
        model = build_model(cfg.model, in_channels, cfg.data.image_size)
    except ReprokitError:
        # The args of a "module:callable" are the user's: checked when it is built, at the start
        # of train (one line, before any compute). A built-in's are checked at load time.
        assert cfg.model.name not in MODELS
    else:
        out = model(torch.rand(2, in_channels, cfg.data.image_size, cfg.data.image_size))  # training mode
        assert out.ndim == 2 and out.shape[0] == 2
    # The optimiser and the schedule as train builds them: library arguments are checked there, in one line.
    layer = torch.nn.Linear(3, 1)
    groups = built_or_refused(lambda: param_groups(layer, loss_fn, t), t.loss.lr is not None, "train.loss.lr")
    optim = built_or_refused(lambda: build_optimizer(groups, t), True, "train.optimizer") if groups else None
    if optim is not None:
        built_or_refused(lambda: build_scheduler(optim, t), True, "train.scheduler")
        layer(torch.ones(1, 3)).sum().backward()
        optim.step()
    if t.augment:
        built_or_refused(
            lambda: BatchAugmentation(t.augment, cfg.seed, in_channels, cfg.data.image_size), True, "train.augment"
        )
    _trainer_builds(cfg.trainer, t.epochs, t.log_every_n_steps)

    wants_distributed(cfg.trainer)
    _validate_then_visualize(cfg, root)

    # mirror: the backend is known; tags as the backends get them.
    registry.spec(cfg.logger.name)
    key_value_tags("0" * 32, "run-0", list(cfg.tags), {"git_commit": "a" * 40})
    flat_tags(list(cfg.tags), {"git_commit": "a" * 40})


# --- the properties ----------------------------------------------------------------------------


def _leaves(data: Any, prefix: str = "") -> set[str]:
    """Dotted keys of the values in nested mappings; an empty mapping is a leaf (logger.args: {})."""
    if isinstance(data, dict) and data:
        return set().union(*(_leaves(v, f"{prefix}{k}.") for k, v in data.items()))
    return {prefix[:-1]}


def test_every_params_key_has_generated_values():
    # Every key of params.yaml and of the schema gets values; a new key without them fails here.
    leaves = _leaves(BASE) | _leaves(config_from_dict({}).to_dict())
    assert leaves - set(KEYS) == set()
    # ... and every generated key exists (a leaf, or a mapping holding leaves, such as model.args).
    assert {k for k in KEYS if not any(leaf == k or leaf.startswith(k + ".") for leaf in leaves)} == set()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_configs())
def test_a_config_is_accepted_or_rejected_in_one_line_naming_a_changed_key(case):
    raw, changed = case
    try:
        cfg = config_from_dict(raw)
    except ReprokitError as exc:
        message = exc.one_line()
        assert "\n" not in message
        assert names_a_changed_key(message, changed), (message, changed)
        return
    assert isinstance(cfg, Config)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(changed_configs())
def test_an_accepted_config_works_in_every_stage_reader(workdir, case):
    raw, _ = case
    try:
        cfg = config_from_dict(raw)
    except ReprokitError:
        return
    exercise_stage_readers(cfg, workdir)


def test_the_project_params_work_in_every_stage_reader(workdir):
    exercise_stage_readers(config_from_dict(BASE), workdir)
