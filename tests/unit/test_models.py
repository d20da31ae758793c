"""model: {name, args}: every built-in builds from its defaults, a user's module:callable builds from
the project root, every failure is one line, and a checkpoint rebuilds exactly the model it holds."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from reprokit import __version__
from reprokit.core.config import MODEL_ARGS, ModelConfig, config_from_dict
from reprokit.core.errors import ConfigError
from reprokit.core.schema import load_dataclass
from reprokit.train.checkpoint import FORMAT, load_model, save_model
from reprokit.train.models import IMAGE_CHANNELS, MODELS, build_model

USER_MODELS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, width, dim):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, dim)

    def forward(self, x):
        return nn.functional.normalize(self.head(self.norm(self.conv(x)).relu().mean(dim=(2, 3))), dim=1)


def build(in_channels, width=8, dim=5):
    return Net(in_channels, width, dim)


def not_a_module(in_channels):
    return "a string"


def feature_map(in_channels):
    return nn.Conv2d(in_channels, 4, 3, padding=1)


def grey_only(in_channels):
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())


NUMBER = 3
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project root as the working directory; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def model_cfg(name: str, **args) -> ModelConfig:
    return load_dataclass(ModelConfig, {"name": name, "args": args}, "model")


def build_error(cfg: ModelConfig, in_channels: int = 1, image_size: int = 16) -> str:
    with pytest.raises(ConfigError) as info:
        build_model(cfg, in_channels, image_size)
    line = info.value.one_line()
    assert "\n" not in str(info.value) and line == str(info.value) + (
        f" (hint: {info.value.hint})" if info.value.hint else ""
    )
    return line


# hf's args name a model folder (there is no default): test_models_hf builds it from tiny saved models.
@pytest.mark.parametrize("name", sorted(set(MODELS) - {"hf"}))
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_every_registered_model_builds_from_its_default_config(name, mode):
    assert set(MODELS) == set(MODEL_ARGS)  # the schema and the registry name the same built-ins
    cfg = load_dataclass(ModelConfig, {"name": name}, "model")
    model = build_model(cfg, IMAGE_CHANNELS[mode], image_size=32)
    out = model(torch.rand(3, IMAGE_CHANNELS[mode], 32, 32))
    assert isinstance(model, nn.Module) and out.ndim == 2 and out.shape[0] == 3


def test_simple_cnn_takes_its_args_from_model_args():
    cfg = config_from_dict({"model": {"name": "simple_cnn", "args": {"channels": [4, 8], "embedding_dim": 7}}}).model
    model = build_model(cfg, 3, image_size=16)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 7)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [4, 8]
    # Omitted args are the built-in's defaults, spelled out in the config.
    assert config_from_dict({}).model.args == {"channels": [16, 32, 64], "embedding_dim": 64}
    assert config_from_dict({"model": {"args": {"embedding_dim": 8}}}).model.args == {
        "channels": [16, 32, 64],
        "embedding_dim": 8,
    }


def test_a_user_model_builds_from_the_project_root_with_in_channels_and_args(project):
    write(project, "my_models.py", USER_MODELS)
    path_before = list(sys.path)
    model = build_model(model_cfg("my_models:build", width=6, dim=9), IMAGE_CHANNELS["RGB"], image_size=16)
    assert sys.path == path_before  # the project root was on sys.path for the import only
    assert model.conv.in_channels == 3 and model.conv.out_channels == 6
    assert model(torch.rand(4, 3, 16, 16)).shape == (4, 9)


def test_a_user_model_in_a_package_and_an_attribute_path(project):
    write(project, "pkg/__init__.py", "")
    write(
        project,
        "pkg/nets.py",
        USER_MODELS
        + "\nclass Factory:\n    @staticmethod\n    def make(in_channels):\n        return build(in_channels)\n",
    )
    assert build_model(model_cfg("pkg.nets:build", dim=3), 1, 16)(torch.rand(2, 1, 16, 16)).shape == (2, 3)
    assert build_model(model_cfg("pkg.nets:Factory.make"), 1, 16)(torch.rand(2, 1, 16, 16)).shape == (2, 5)


def test_the_probe_changes_nothing(project):
    # The output check runs the model once: it must not move BatchNorm statistics, a module's
    # train/eval mode or the random generator, or a checked model would train differently.
    write(project, "my_models.py", USER_MODELS)
    torch.manual_seed(0)
    unchecked = build_model(model_cfg("my_models:build"), 1)
    rng_unchecked = torch.get_rng_state()
    torch.manual_seed(0)
    checked = build_model(model_cfg("my_models:build"), 1, image_size=16)
    assert torch.equal(torch.get_rng_state(), rng_unchecked)
    assert all(torch.equal(a, b) for a, b in zip(unchecked.state_dict().values(), checked.state_dict().values()))
    assert all(m.training for m in checked.modules())


@pytest.mark.parametrize(
    ("files", "name", "expected"),
    [
        ({}, "nowhere:build", "model.name 'nowhere:build': no module named 'nowhere' in the project root "),
        (
            {"my_models.py": USER_MODELS},
            "my_models:biuld",
            (
                "model.name 'my_models:biuld': module 'my_models' has no attribute 'biuld' "
                "(hint: callables it defines: Net, build, feature_map, grey_only, not_a_module)"
            ),
        ),
        (
            {"my_models.py": USER_MODELS},
            "my_models:Net.create",
            "model.name 'my_models:Net.create': my_models.Net has no attribute 'create'",
        ),
        (
            {"my_models.py": USER_MODELS},
            "my_models:NUMBER",
            "model.name 'my_models:NUMBER': my_models.NUMBER is an int, not a callable",
        ),
        (
            {"broken.py": "x = 1 / 0\n"},
            "broken:build",
            "model.name 'broken:build': importing module 'broken' failed: ZeroDivisionError: division by zero",
        ),
        (
            {"typo.py": "def build(:\n"},
            "typo:build",
            "model.name 'typo:build': importing module 'typo' failed: SyntaxError: ",
        ),
        (
            {"needs.py": "import not_installed_anywhere\n"},
            "needs:build",
            (
                "model.name 'needs:build': importing module 'needs' failed: ModuleNotFoundError: No module named "
                "'not_installed_anywhere' (hint: install 'not_installed_anywhere' in this environment)"
            ),
        ),
        (
            {"my_models.py": USER_MODELS},
            "my_models:Net",
            "model.name 'my_models:Net': my_models.Net(in_channels=1, **model.args) raised TypeError: ",
        ),
        (
            {"my_models.py": USER_MODELS},
            "my_models:not_a_module",
            (
                "model.name 'my_models:not_a_module': my_models.not_a_module(in_channels=1, **model.args) returned a str, "
                "not a torch.nn.Module"
            ),
        ),
        (
            {"my_models.py": USER_MODELS},
            "my_models:feature_map",
            (
                "model.name 'my_models:feature_map': the model maps an image batch of shape [2, 1, 16, 16] to a Tensor of "
                "shape [2, 4, 16, 16]; expected a float tensor of embeddings [2, D]"
            ),
        ),
    ],
)
def test_a_user_model_that_fails_is_one_line_naming_module_attribute_and_reason(project, files, name, expected):
    for rel, text in files.items():
        write(project, rel, text)
    assert expected in build_error(model_cfg(name))


def test_a_model_that_fails_on_the_probe_batch_and_args_that_set_in_channels(project):
    write(project, "my_models.py", USER_MODELS)
    line = build_error(model_cfg("my_models:grey_only"), in_channels=3)
    assert line.startswith(
        "model.name 'my_models:grey_only': the model fails on a probe batch of shape [2, 3, 16, 16]: RuntimeError: "
    )
    line = build_error(model_cfg("my_models:build", in_channels=3))
    assert (
        line
        == "model.name 'my_models:build': model.args must not set in_channels; it follows data.image_mode (L: 1, RGB: 3)"
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"name": "resnet"},
            "model.name must be one of simple_cnn, hf or 'module:callable' (your own, e.g. 'my_models:build'); got 'resnet'",
        ),
        ({"name": "my_models.build"}, "model.name must be one of simple_cnn, hf or 'module:callable'"),
        ({"args": {"width": 3}}, "unknown key 'model.args.width' in model.args; valid keys: channels, embedding_dim"),
        ({"args": {"embedding_dim": 0}}, "model.args.embedding_dim must be an integer ≥ 1; got 0"),
        ({"name": "m:b", "args": {"when": {1, 2}}}, "model.args.when must be plain YAML"),
    ],
)
def test_model_config_errors_are_one_line(model, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": model})
    assert expected in info.value.one_line()


def _weights_randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    return model.eval()


@pytest.mark.parametrize("name", ["simple_cnn", "my_models:build"])
def test_the_checkpoint_rebuilds_the_same_model(project, name):
    write(project, "my_models.py", USER_MODELS)
    args = {"channels": [4, 8], "embedding_dim": 6} if name == "simple_cnn" else {"width": 5, "dim": 7}
    cfg = config_from_dict({"model": {"name": name, "args": args}, "data": {"image_mode": "RGB", "image_size": 16}})
    torch.manual_seed(1)
    model = _weights_randomised(build_model(cfg.model, 3, 16))
    save_model(project / "model.ckpt", model, cfg.model, cfg.data, in_channels=3)
    for mod in [m for m in sys.modules if m == "my_models"]:
        del sys.modules[mod]  # rebuilt by importing the user's module again, as validate does
    torch.manual_seed(2)  # another init: only the stored weights can make the embeddings equal
    loaded, payload = load_model(project / "model.ckpt")
    assert payload["format"] == FORMAT and payload["reprokit_version"] == __version__
    assert payload["model"] == {"name": name, "args": cfg.model.args} and payload["in_channels"] == 3
    images = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert not loaded.training


def test_a_checkpoint_whose_model_code_changed_is_one_line(project):
    write(project, "my_models.py", USER_MODELS)
    cfg = config_from_dict({"model": {"name": "my_models:build", "args": {"dim": 7}}, "data": {"image_size": 16}})
    save_model(project / "model.ckpt", build_model(cfg.model, 1, 16), cfg.model, cfg.data, in_channels=1)
    del sys.modules["my_models"]
    write(
        project,
        "my_models.py",
        USER_MODELS.replace("self.head = nn.Linear(width, dim)", "self.head = nn.Linear(width, dim + 1)"),
    )
    with pytest.raises(ConfigError) as info:
        load_model(project / "model.ckpt")
    line = info.value.one_line()
    assert line.startswith(
        f"{project / 'model.ckpt'}: its weights do not fit model.name 'my_models:build' as it builds now ("
    )
    assert "re-run train" in line and "\n" not in line


def test_a_checkpoint_of_the_first_format_still_loads(tmp_path):
    torch.manual_seed(0)
    model = _weights_randomised(build_model(model_cfg("simple_cnn", channels=[4], embedding_dim=3), 1))
    payload = {
        "format": "reprokit-model/1",
        "model": {"name": "simple_cnn", "channels": [4], "embedding_dim": 3},
        "in_channels": 1,
        "image_size": 16,
        "image_mode": "L",
        "state_dict": model.state_dict(),
    }
    torch.save(payload, tmp_path / "old.ckpt")
    loaded, _ = load_model(tmp_path / "old.ckpt")
    images = torch.rand(2, 1, 16, 16)
    assert torch.equal(loaded(images), model(images))
