"""model.weights: a state-dict file loaded strictly into the network as built; every mismatch one line."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ConfigError
from reprokit.train.checkpoint import save_model
from reprokit.train.models import build_model

USER_MODELS = """
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, width, dim):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, dim)

    def forward(self, x):
        return self.head(self.norm(self.conv(x)).relu().mean(dim=(2, 3)))


def build(in_channels, width=4, dim=3):
    return Net(in_channels, width, dim)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_models.py").write_text(textwrap.dedent(USER_MODELS))
    yield tmp_path
    sys.modules.pop("my_models", None)


def cfg(weights=None, head=None, name="my_models:build", **args):
    return config_from_dict({"model": {"name": name, "args": args, "weights": weights, "head": head}}).model


def trained(seed: int = 7, head=None):
    """The network as built, its weights moved away from any initialisation."""
    torch.manual_seed(seed)
    model = build_model(cfg(head=head), 1, image_size=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def error(model_cfg) -> str:
    with pytest.raises(ConfigError) as info:
        build_model(model_cfg, 1, image_size=8)
    line = info.value.one_line()
    assert "\n" not in line
    return line


def same_outputs(a, b) -> bool:
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        return torch.equal(a.eval()(images), b.eval()(images))


def test_a_user_model_loads_a_safetensors_file(project):
    source = trained()
    save_file(source.state_dict(), project / "w.safetensors")
    torch.manual_seed(0)  # another initialisation: only the file can make the outputs equal
    loaded = build_model(cfg("w.safetensors"), 1, image_size=8)
    assert same_outputs(loaded, source)
    assert not same_outputs(build_model(cfg(), 1, image_size=8), source)


@pytest.mark.parametrize("form", ["state_dict", "lightning", "reprokit_checkpoint"])
def test_pt_files_a_dict_with_state_dict_and_a_finished_runs_checkpoint_load(project, form):
    source = trained()
    if form == "state_dict":
        torch.save(source.state_dict(), project / "w.pt")
    elif form == "lightning":
        torch.save({"epoch": 3, "state_dict": source.state_dict()}, project / "w.pt")
    else:
        run_cfg = config_from_dict({"model": {"name": "my_models:build"}, "data": {"image_size": 8}})
        save_model(project / "w.pt", source, run_cfg.model, run_cfg.data, in_channels=1)
    assert same_outputs(build_model(cfg("w.pt"), 1, image_size=8), source)


def test_a_file_with_one_wrong_key_is_one_line_naming_it(project):
    state = trained().state_dict()
    state["head.wieght"] = state.pop("head.weight")
    save_file(state, project / "w.safetensors")
    assert error(cfg("w.safetensors")) == (
        "model.weights 'w.safetensors' does not fit the model (9 keys): missing keys: 'head.weight'; "
        "unexpected keys: 'head.wieght'"
    )


def test_a_lightning_prefix_is_listed_a_few_keys_at_a_time_with_a_hint(project):
    state = {f"model.{k}": v for k, v in trained().state_dict().items()}
    state["criterion.proxies"] = torch.zeros(3, 3)
    torch.save({"state_dict": state}, project / "lightning.ckpt")
    line = error(cfg("lightning.ckpt"))
    assert line.startswith(
        "model.weights 'lightning.ckpt' does not fit the model (9 keys): missing keys: "
        "'conv.bias', 'conv.weight', 'head.bias' and 6 more; unexpected keys: 'criterion.proxies', "
        "'model.conv.bias', 'model.conv.weight' and 7 more (hint: the file's keys start with 'model.'"
    )
    assert "k.removeprefix('model.')" in line


def test_a_shape_that_does_not_fit_names_the_key_and_both_shapes(project):
    save_file(trained().state_dict(), project / "w.safetensors")
    assert error(cfg("w.safetensors", dim=5)) == (
        "model.weights 'w.safetensors': key 'head.bias' has shape [3] in the file and [5] in the model (and 1 more)"
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            None,
            "model.weights 'missing.pt': no such file (hint: give a state-dict file (.safetensors, .pt, .pth) "
            "relative to the project root)",
        ),
        ("folder", "model.weights 'missing.pt': is a folder, not a file"),
        ("list", "model.weights 'missing.pt': holds a list, not a state dict (a mapping of names to tensors)"),
        ("object", "model.weights 'missing.pt': not a state dict this reader can open: UnpicklingError: "),
        ("garbage", "model.weights 'missing.pt': not a state dict this reader can open: "),
    ],
)
def test_a_file_that_is_missing_or_not_a_state_dict_is_one_line(project, make, expected):
    path = project / "missing.pt"
    if make == "folder":
        path.mkdir()
    elif make == "list":
        torch.save([torch.zeros(1)], path)
    elif make == "object":
        torch.save({"net": torch.nn.Linear(1, 1)}, path)  # a pickled module: weights_only refuses to run it
    elif make == "garbage":
        path.write_bytes(b"\x00not a torch file")
    assert error(cfg("missing.pt")).startswith(expected)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ("w.txt", "model.weights must be null or a state-dict file (.safetensors, .pt, .pth, .ckpt); got 'w.txt'"),
        ("", "model.weights must be null or a state-dict file"),
        (3, "model.weights must be a string or null; got 3"),
    ],
)
def test_a_weights_value_that_is_not_a_state_dict_file_name_is_one_line(weights, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"weights": weights}})
    assert info.value.one_line().startswith(expected)


def test_with_a_head_the_file_covers_the_whole_network(project):
    head = {"dim": 2}
    source = trained(head=head)
    assert {"backbone.conv.weight", "head.proj.weight", "head.proj.bias"} <= set(source.state_dict())
    save_file(source.state_dict(), project / "all.safetensors")
    torch.manual_seed(0)
    assert same_outputs(build_model(cfg("all.safetensors", head=head), 1, image_size=8), source)


def test_with_a_head_a_file_of_the_backbones_own_keys_loads_into_the_backbone(project):
    backbone = trained()
    save_file(backbone.state_dict(), project / "backbone.safetensors")
    torch.manual_seed(0)
    loaded = build_model(cfg("backbone.safetensors", head={"dim": 2}), 1, image_size=8)
    torch.manual_seed(0)
    fresh = build_model(cfg(head={"dim": 2}), 1, image_size=8)
    # The backbone is the file's, the head the seeded initialisation of a build without weights.
    assert same_outputs(loaded.backbone, backbone)
    assert all(torch.equal(a, b) for a, b in zip(loaded.head.state_dict().values(), fresh.head.state_dict().values()))


def test_a_backbone_file_missing_a_key_with_a_head_lists_the_whole_networks_keys(project):
    state = trained().state_dict()
    del state["conv.bias"]
    save_file(state, project / "w.safetensors")
    line = error(cfg("w.safetensors", head={"dim": 2}))
    assert line.startswith(
        "model.weights 'w.safetensors' does not fit the model (11 keys): missing keys: 'backbone.conv.bias', "
    )
    assert (
        "(hint: the model's keys start with 'backbone.' (model.head wraps the backbone) where the file's do not" in line
    )
