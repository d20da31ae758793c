import dataclasses

import pandas as pd
import pytest
import yaml

from reprokit.core.config import Config, config_from_dict, flatten, load_config, redact
from reprokit.core.errors import ConfigError


def test_project_params_yaml_loads_with_every_section():
    cfg = load_config("params.yaml")
    assert isinstance(cfg, Config)
    assert cfg.logger.name == "tensorboard"
    assert cfg.validate.metric_names() == ["cmc@1", "cmc@5", "precision@5", "map@5", "map@r", "r_precision"]


def test_defaults_equal_the_project_params():
    # params.yaml spells out every default: a drift between the two would be a silent change.
    # One deliberate difference: the project's model is its own models.py (`reprokit init` writes
    # it), which builds the built-in default network with the same args.
    project = load_config("params.yaml")
    assert project.model.name == "models:build" and config_from_dict({}).model.name == "simple_cnn"
    assert dataclasses.replace(project, model=config_from_dict({}).model) == config_from_dict({})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trian": {}}, "unknown key 'trian' in the config; valid keys: seed, data, model"),
        ({"train": {"epoch": 3}}, "unknown key 'train.epoch' in train; valid keys: epochs,"),
        ({"train": {"epochs": "3"}}, "train.epochs must be an integer; got '3'"),
        ({"train": {"epochs": True}}, "train.epochs must be an integer; got True"),
        ({"train": {"epochs": -1}}, "train.epochs must be an integer ≥ 1; got -1"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number; got 'fast'"),
        ({"train": {"lr": "1e-3"}}, "train.lr must be a number; got the string '1e-3' (hint: YAML 1.1 reads"),
        ({"train": {"lr": 0}}, "train.lr must be null or a number > 0; got 0.0"),
        ({"train": {"lr": float("nan")}}, "train.lr must be a finite number; got nan"),
        (
            {"train": {"loss": {"args": {"margin": float("-inf")}}}},
            "train.loss.args.margin must be a finite number; got -inf",
        ),
        ({"train": {"loss": {"args": {"margin": -1}}}}, "train.loss.args.margin must be a number ≥ 0; got -1.0"),
        (
            {"train": {"weight_decay": 1e300}},
            "train.weight_decay must be a number of magnitude ≤ 3.4e+38 (float32); got 1e+300",
        ),
        ({"train": {"weight_decay": -0.1}}, "train.weight_decay must be null or a number ≥ 0; got -0.1"),
        ({"train": {"n_instances": 1}}, "train.n_instances must be an integer ≥ 2 (a triplet needs a positive); got 1"),
        ({"train": {"n_labels": 1}}, "train.n_labels must be an integer ≥ 2 (a triplet needs a negative); got 1"),
        ({"train": {"n_labels": 600, "n_instances": 4}}, "train.n_labels × train.n_instances must be ≤ 2048"),
        (
            {"train": {"loss": {"args": {"miner": "semi"}}}},
            "train.loss.args.miner must be one of 'all', 'hard'; got 'semi'",
        ),
        ({"train": {"n_labels": 600, "n_instances": 4, "loss": {"args": {"miner": "hard"}}}}, None),
        ({"train": {"num_workers": -1}}, "train.num_workers must be an integer ≥ 0; got -1"),
        ({"train": {"validate_every_n_epochs": -1}}, "train.validate_every_n_epochs must be an integer ≥ 0; got -1"),
        ({"train": {"checkpoint": "first"}}, "train.checkpoint must be one of 'last', 'best'; got 'first'"),
        (
            {"train": {"checkpoint": "best", "validate_every_n_epochs": 0}},
            "train.checkpoint 'best' needs validation while training; got train.validate_every_n_epochs 0 "
            "(hint: set train.validate_every_n_epochs to 1 or more, or train.checkpoint: last)",
        ),
        (
            {"validate": {"cmc_top_k": []}},
            "validate.cmc_top_k must be a non-empty list of distinct integers ≥ 1; got []",
        ),
        (
            {"validate": {"cmc_top_k": [1, 0]}},
            "validate.cmc_top_k must be a non-empty list of distinct integers ≥ 1; got [1, 0]",
        ),
        ({"validate": {"map_top_k": [5, 5]}}, "validate.map_top_k must be a list of distinct integers ≥ 1; got [5, 5]"),
        ({"validate": {"cmc_top_k": 5}}, "validate.cmc_top_k must be a list of integers; got 5"),
        ({"validate": {"cmc_top_k": [1, None]}}, "validate.cmc_top_k[1] must be an integer; got None"),
        ({"validate": {"distance": "manhattan"}}, "validate.distance must be one of 'euclidean', 'cosine'"),
        ({"validate": {"batch_size": 0}}, "validate.batch_size must be an integer ≥ 1; got 0"),
        ({"validate": {"memory_budget_mb": 0}}, "validate.memory_budget_mb must be an integer ≥ 1; got 0"),
        ({"visualize": {"top_k": 0}}, "visualize.top_k must be an integer ≥ 1; got 0"),
        ({"visualize": {"n_ground_truth": -1}}, "visualize.n_ground_truth must be an integer ≥ 0; got -1"),
        (
            {"logger": {"name": "tensorbord"}},
            "logger.name must be one of tensorboard, csv, mlflow, clearml, wandb; got 'tensorbord'",
        ),
        ({"logger": {"name": "neptune"}}, "Neptune's hosted service has shut down"),
        ({"logger": {"timeout_s": 0}}, "logger.timeout_s must be a number of seconds in (0, 86400]; got 0.0"),
        ({"logger": {"timeout_s": 1e20}}, "logger.timeout_s must be a number of seconds in (0, 86400]; got 1e+20"),
        ({"logger": {"args": {1: "x"}}}, "logger.args keys must be strings; got 1"),
        ({"model": {"name": "resnet"}}, "model.name must be one of simple_cnn, hf or 'module:callable'"),
        ({"model": {"args": {"channels": []}}}, "model.args.channels must be a non-empty list of integers ≥ 1; got []"),
        ({"model": {"args": {"embedding_dim": 0}}}, "model.args.embedding_dim must be an integer ≥ 1; got 0"),
        ({"data": {"dataframe": 3}}, "data.dataframe must be a string or null; got 3"),
        ({"data": {"dataframe": ""}}, "data.dataframe must be null or a non-empty path; got ''"),
        ({"data": {"image_size": 4}}, "data.image_size must be an integer in [8, 1024]; got 4"),
        ({"data": {"image_mode": "CMYK"}}, "data.image_mode must be one of 'L', 'RGB'; got 'CMYK'"),
        ({"data": {"digits": {"views": 1}}}, "data.digits.views must be an integer ≥ 2"),
        ({"data": {"digits": {"n_source": 5}}}, "data.digits.n_source must be null or an integer in [10, 1797]; got 5"),
        ({"data": {"digits": {"scale": 1.0}}}, "data.digits.scale must be a number in [0, 1); got 1.0"),
        ({"data": {"digits": {"noise": -0.1}}}, "data.digits.noise must be a number ≥ 0; got -0.1"),
        (
            {"data": {"digits": {"validation_fraction": 1}}},
            "data.digits.validation_fraction must be a number in (0, 1); got 1.0",
        ),
        (
            {"data": {"digits": {"n_source": 10, "validation_fraction": 0.01}}},
            "data.digits.validation_fraction must be a fraction that leaves labels in both splits (round(10 × fraction) in [1, 9]; here 0); got 0.01",
        ),
        ({"data": "x"}, "data must be a mapping; got 'x'"),
        (
            {"trainer": {"accelerator": "tpu"}},
            "trainer.accelerator must be one of 'cpu', 'gpu', 'cuda', 'mps', 'auto'; got 'tpu'",
        ),
        ({"trainer": {"strategy": "ddp_spawn"}}, "trainer.strategy must be one of 'auto', 'ddp'; got 'ddp_spawn'"),
        ({"trainer": {"precision": "16-true"}}, "trainer.precision must be one of '32-true', '64-true', '16-mixed'"),
        ({"trainer": {"precision": 32}}, "trainer.precision must be one of '32-true'"),
        ({"trainer": {"devices": 0}}, "trainer.devices must be an integer in [1, 1024]; got 0"),
        ({"trainer": {"num_nodes": 2**32}}, "trainer.num_nodes must be an integer in [1, 1024]; got 4294967296"),
        ({"seed": -1}, "seed must be an integer in [0, 4294967295]; got -1"),
        ({"seed": 2**32}, "seed must be an integer in [0, 4294967295]; got 4294967296"),
        (
            {"tags": ["ok", "a,b"]},
            "tags[1] must be a non-empty string of at most 64 characters without commas; got 'a,b'",
        ),
        ({"tags": [""]}, "tags[0] must be a non-empty string"),
        ({"tags": ["x" * 65]}, "tags[0] must be a non-empty string of at most 64 characters"),
        # Cross-key rules.
        (
            {"visualize": {"metric": "map@50"}},
            "visualize.metric must be one of the metrics validate computes (cmc@1, cmc@5, precision@5, map@5, map@r, "
            "r_precision); got 'map@50' (hint: add 50 to validate.map_top_k, or rank by a computed metric)",
        ),
        ({"visualize": {"metric": "mrr"}}, "visualize.metric must be one of the metrics validate computes"),
        ({"visualize": {"metric": "mrr"}, "validate": {"extra_metrics": ["mrr"]}}, None),
        # The default metric is not special: it must be computed too.
        (
            {"validate": {"map_top_k": [10]}},
            "visualize.metric must be one of the metrics validate computes (cmc@1, cmc@5, precision@5, map@10, map@r, "
            "r_precision); got 'map@5' (hint: add 5 to validate.map_top_k, or rank by a computed metric)",
        ),
        ({"visualize": {"metric": "n_gt"}}, "visualize.metric must be one of the metrics validate computes"),
        (
            {"train": {"checkpoint": "best", "monitor": "map@50"}},
            "train.monitor must be one of the metrics validate computes (cmc@1, cmc@5, precision@5, map@5, map@r, "
            "r_precision); got 'map@50'",
        ),
        (
            {"train": {"checkpoint": "best", "monitor": "loss"}},
            "train.monitor must be one of the metrics validate computes",
        ),
        ({"train": {"checkpoint": "best", "monitor": "mrr"}, "validate": {"extra_metrics": ["mrr"]}}, None),
        ({"train": {"monitor": "loss"}}, None),  # checkpoint: last does not use it
        (
            {"model": {"args": {"channels": [8, 8, 8, 8]}}, "data": {"image_size": 8}},
            "data.image_size must be ≥ 16 with 4 entries in model.args.channels (each conv block halves the image); got 8",
        ),
        (
            {"data": {"digits": {"n_source": 30}}},
            "train.n_labels must be ≤ 20, the training labels data.digits generates (n_source 30, validation_fraction 0.33); got 32",
        ),
        (
            {"train": {"n_instances": 5}},
            "train.n_instances must be ≤ data.digits.views = 4 (the instances each label has); got 5",
        ),
    ],
)
def test_bad_config_gives_one_line_naming_key_value_and_allowed(data, expected):
    if expected is None:  # a near miss that is accepted
        config_from_dict(data)
        return
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    message = info.value.one_line()
    assert expected in message
    assert "\n" not in message


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_config_is_frozen():
    cfg = config_from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_flatten_and_redact_secrets():
    cfg = config_from_dict({"logger": {"name": "mlflow", "args": {"api_token": "abc123", "tracking_uri": "x"}}})
    flat = flatten(redact(cfg.to_dict()))
    assert flat["logger.args.tracking_uri"] == "x"
    assert flat["logger.args.api_token"] != "abc123"
    assert "abc123" not in yaml.safe_dump(redact(cfg.to_dict()))
    assert redact({"nested": {"PASSWORD": "p", "my_secret_key": "s", "ok": 1}}) == {
        "nested": {"PASSWORD": "***REDACTED***", "my_secret_key": "***REDACTED***", "ok": 1}
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"train:\n  epochs: 2\ntrain:\n  epochs: 3\n", "not valid YAML: key 'train' appears twice in one mapping"),
        (b"train:\n  epochs: 2\n  epochs: 3\n", "key 'epochs' appears twice"),
        (b"train: {lr: \xff}\n", "is not UTF-8 text"),
        (b"- 1\n- 2\n", "the config must be a mapping; got [1, 2]"),
        (b"0\n", "the config must be a mapping; got 0"),
    ],
)
def test_load_config_rejects_what_yaml_would_silently_take(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.one_line()


def test_load_config_of_an_empty_file_or_a_folder(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing set\n")
    assert load_config(tmp_path / "empty.yaml") == config_from_dict({})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  <<: {epochs: 2, lr: 0.01}\n  epochs: 3\n")
    cfg = load_config(path)
    assert (cfg.train.epochs, cfg.train.lr) == (3, 0.01)


# Python rounds halves to even: 10 x 0.25 = 2.5 -> 2 validation labels, 11 x 0.5 = 5.5 -> 6.
@pytest.mark.parametrize(("n_source", "fraction"), [(10, 0.33), (10, 0.25), (11, 0.5), (13, 0.9)])
def test_digits_split_sizes_are_those_generate_digits_writes(tmp_path, n_source, fraction):
    from reprokit.core.config import DigitsConfig
    from reprokit.core.schema import load_dataclass
    from reprokit.data.digits import generate_digits

    digits = load_dataclass(DigitsConfig, {"n_source": n_source, "views": 2, "validation_fraction": fraction})
    df = pd.read_csv(generate_digits(digits, 0, tmp_path / "digits"))
    labels = df.groupby("split")["label"].nunique().to_dict()
    assert (labels.get("train", 0), labels.get("validation", 0)) == digits.split_sizes()


def test_every_trainer_value_the_schema_allows_is_one_lightning_takes():
    """train passes the trainer section to lightning.Trainer, validate (under DDP) to lightning.Fabric."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT_STR
    from lightning.fabric.strategies import STRATEGY_REGISTRY
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    from reprokit.core.config import TrainerConfig

    hints = typing.get_type_hints(TrainerConfig)
    accelerators = set(typing.get_args(hints["accelerator"]))
    assert accelerators - {"auto", "gpu"} <= set(AcceleratorRegistry.available_accelerators())
    for strategy in set(typing.get_args(hints["strategy"])) - {"auto"}:
        assert strategy in StrategyRegistry.available_strategies()
        assert strategy in STRATEGY_REGISTRY.available_strategies()
    assert set(typing.get_args(hints["precision"])) <= set(typing.get_args(_PRECISION_INPUT_STR))
