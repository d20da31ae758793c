import pytest
import yaml

from reprokit.core.config import Config, config_from_dict, flatten, load_config, redact
from reprokit.core.errors import ConfigError


def test_project_params_yaml_loads_with_every_section():
    cfg = load_config("params.yaml")
    assert isinstance(cfg, Config)
    assert cfg.logger.name == "tensorboard"
    assert cfg.validate.metric_names() == ["cmc@1", "cmc@5", "precision@5", "map@5"]


def test_defaults_equal_the_project_params():
    # params.yaml spells out every default: a drift between the two would be a silent change.
    assert load_config("params.yaml") == config_from_dict({})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trian": {}}, "unknown key 'trian' in the config; valid keys: seed, data, model"),
        ({"train": {"epoch": 3}}, "unknown key 'train.epoch' in train; valid keys: epochs,"),
        ({"train": {"epochs": "3"}}, "train.epochs must be an integer; got '3'"),
        ({"train": {"epochs": True}}, "train.epochs must be an integer; got True"),
        ({"train": {"epochs": -1}}, "train.epochs must be > 0; got -1"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number; got 'fast'"),
        ({"train": {"n_instances": 1}}, "train.n_instances must be >= 2"),
        ({"train": {"miner": "semi"}}, "train.miner must be one of 'all', 'hard'; got 'semi'"),
        ({"validate": {"cmc_top_k": [1, 0]}}, "validate.cmc_top_k values must be > 0; got 0"),
        ({"validate": {"cmc_top_k": 5}}, "validate.cmc_top_k must be a list of integers; got 5"),
        ({"validate": {"distance": "manhattan"}}, "validate.distance must be one of 'euclidean', 'cosine'"),
        ({"logger": {"name": "tensorbord"}}, "logger.name must be one of tensorboard, csv, mlflow, clearml, wandb; got 'tensorbord'"),
        ({"logger": {"name": "neptune"}}, "Neptune's hosted service has shut down"),
        ({"model": {"name": "resnet"}}, "model.name must be one of 'simple_cnn'; got 'resnet'"),
        ({"visualize": {"metric": "map@50"}}, "visualize.metric must be one of the computed metrics"),
        ({"data": {"dataframe": 3}}, "data.dataframe must be a string or null; got 3"),
        ({"data": "x"}, "data must be a mapping; got 'x'"),
    ],
)
def test_bad_config_gives_one_line_naming_key_value_and_allowed(data, expected):
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
    with pytest.raises(Exception):
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
