"""model.name: hf — a transformers model folder on disk, pooled into embeddings, every mistake one line.

The folders are tiny random models saved with save_pretrained (tests/hf_models.py): no download."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from reprokit.core.config import config_from_dict  # noqa: E402
from reprokit.core.errors import ConfigError  # noqa: E402
from reprokit.train.checkpoint import load_model, save_model  # noqa: E402
from reprokit.train.hf_backbone import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from reprokit.train.models import build_model  # noqa: E402
from tests.hf_models import TINY_MODELS, save_tiny_vit  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {kind: save(root / kind) for kind, save in TINY_MODELS.items()}


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    # The builder sets HF_HUB_OFFLINE for its process; keep the test process's environment as it was.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def hf_cfg(path, head=None, **args):
    return config_from_dict({"model": {"name": "hf", "args": {"path": str(path), **args}, "head": head}}).model


def one_line(exc: pytest.ExceptionInfo) -> str:
    line = exc.value.one_line()
    assert "\n" not in line
    return line


def reference(folder: Path, images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The transformers model called directly on normalised RGB images: what the backbone must pool."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    x = (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        return model(pixel_values=x)


def test_the_tiny_models_are_small_and_rebuilt_byte_for_byte(tmp_path):
    for kind, save in TINY_MODELS.items():
        a, b, other = save(tmp_path / f"{kind}-a"), save(tmp_path / f"{kind}-b"), save(tmp_path / f"{kind}-c", seed=1)
        files = sorted(p.name for p in a.iterdir())
        assert files == ["config.json", "model.safetensors"]
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
        assert (a / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()
        assert sum((a / f).stat().st_size for f in files) < 400_000


@pytest.mark.parametrize(
    ("kind", "pooling", "dim"),
    [
        ("vit", "cls", 32),
        ("vit", "mean", 32),
        ("vit", "pooler", 32),
        ("dinov2", "cls", 32),
        ("dinov2", "mean", 32),
        ("dinov2", "pooler", 32),
        ("resnet", "mean", 16),
        ("resnet", "pooler", 16),
    ],
)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_each_model_and_pooling_builds_and_embeds(folders, kind, pooling, dim, in_channels):
    model = build_model(hf_cfg(folders[kind], pooling=pooling), in_channels, image_size=32)
    out = model.eval()(torch.rand(3, in_channels, 32, 32))
    assert out.shape == (3, dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["vit", "dinov2"])
def test_pooling_is_the_class_token_the_mean_of_the_patches_or_the_pooler(folders, kind):
    images = torch.rand(2, 3, 32, 32)
    ref = reference(folders[kind], images)
    tokens = ref.last_hidden_state  # [2, 1 + 16, 32]: the class token, then the 4 x 4 patches
    assert tokens.shape == (2, 17, 32)
    expected = {"cls": tokens[:, 0], "mean": tokens[:, 1:].mean(dim=1), "pooler": ref.pooler_output}
    for pooling, want in expected.items():
        model = build_model(hf_cfg(folders[kind], pooling=pooling), 3, image_size=32).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(images), want, rtol=1e-5, atol=1e-6)


def test_a_convolutional_model_pools_its_feature_map(folders):
    images = torch.rand(2, 3, 32, 32)
    ref = reference(folders["resnet"], images)
    model = build_model(hf_cfg(folders["resnet"], pooling="mean"), 3, image_size=32).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), ref.last_hidden_state.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)


def test_grey_images_are_repeated_to_the_models_three_channels(folders):
    grey = torch.rand(2, 1, 32, 32)
    as_grey = build_model(hf_cfg(folders["vit"]), 1, image_size=32).eval()
    as_rgb = build_model(hf_cfg(folders["vit"]), 3, image_size=32).eval()
    with torch.no_grad():
        assert torch.equal(as_grey(grey), as_rgb(grey.repeat(1, 3, 1, 1)))


def test_input_norm_reads_the_folders_preprocessor_config(tmp_path):
    folder = save_tiny_vit(
        tmp_path / "vit", preprocessor={"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    )
    images = torch.rand(2, 3, 32, 32)
    for input_norm, mean, std in [
        ("auto", [0.5] * 3, [0.25] * 3),
        ("imagenet", IMAGENET_MEAN, IMAGENET_STD),
        ("none", [0.0] * 3, [1.0] * 3),
    ]:
        model = build_model(hf_cfg(folder, input_norm=input_norm), 3, image_size=32).eval()
        want = reference(folder, images, mean, std).last_hidden_state[:, 0]
        with torch.no_grad():
            torch.testing.assert_close(model(images), want, rtol=1e-5, atol=1e-6)
        # The statistics come from the folder, never from a state dict.
        assert not any("pixel_" in k for k in model.state_dict())


def test_another_image_size_than_the_models_interpolates_its_position_embeddings(folders):
    for kind in ("vit", "dinov2"):
        model = build_model(hf_cfg(folders[kind]), 3, image_size=48)
        assert model.eval()(torch.rand(2, 3, 48, 48)).shape == (2, 32)


def test_a_head_projects_and_normalises_and_the_probe_reports_its_size(folders):
    model = build_model(hf_cfg(folders["dinov2"], head={"dim": 8}, pooling="mean"), 3, image_size=32).eval()
    out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
    assert {"head.proj.weight", "head.proj.bias"} <= set(model.state_dict())
    assert any(k.startswith("backbone.hf.") for k in model.state_dict())


def test_building_twice_with_one_seed_gives_one_network(folders):
    def build():
        torch.manual_seed(3)
        return build_model(hf_cfg(folders["vit"], head={"dim": 4}), 3, image_size=32)

    a, b = build().state_dict(), build().state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_the_checkpoint_rebuilds_an_hf_model_with_its_head(folders, tmp_path):
    cfg = config_from_dict(
        {
            "model": {"name": "hf", "args": {"path": str(folders["vit"])}, "head": {"dim": 6, "normalize": False}},
            "data": {"image_mode": "RGB", "image_size": 32},
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 3, 32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # trained: no longer the folder's weights
    save_model(tmp_path / "model.ckpt", model, cfg.model, cfg.data, in_channels=3)
    loaded, payload = load_model(tmp_path / "model.ckpt")
    assert payload["model"]["head"] == {"dim": 6, "normalize": False}
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))


def test_missing_folder_is_one_line_saying_how_to_download_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg("weights/dinov2-small"), 3, image_size=32)
    line = one_line(info)
    assert line.startswith("model.args.path 'weights/dinov2-small': no such folder")
    assert "--local-dir weights/dinov2-small" in line and "`dvc add weights/dinov2-small`" in line
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg("empty"), 3, image_size=32)
    assert one_line(info).startswith("model.args.path 'empty': no config.json in it; not a transformers model folder")


def test_a_broken_folder_is_one_line(tmp_path):
    folder = save_tiny_vit(tmp_path / "vit")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg(folder), 3, image_size=32)
    assert one_line(info).startswith(f"model.args.path {str(folder)!r}: transformers could not load it: ")


def test_class_token_pooling_on_a_feature_map_is_one_line(folders):
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg(folders["resnet"], pooling="cls"), 3, image_size=32)
    assert one_line(info) == (
        "model.args.pooling 'cls': this model (ResNetModel) outputs feature maps [2, 16, 4, 4], which have no class "
        "token (hint: use model.args.pooling: mean or pooler)"
    )


def test_rgb_data_for_a_one_channel_model_is_one_line(tmp_path):
    from transformers import ViTConfig, ViTModel

    folder = tmp_path / "grey-vit"
    ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=8,
            num_channels=1,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    ).save_pretrained(str(folder))
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg(folder), 3, image_size=32)
    assert one_line(info) == (
        f"model.args.path {str(folder)!r}: the model takes 1-channel images and data.image_mode "
        "gives 3 (hint: set data.image_mode: L)"
    )
    assert build_model(hf_cfg(folder), 1, image_size=32).eval()(torch.rand(2, 1, 32, 32)).shape == (2, 32)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {},
            "model.args.path must be the folder of a transformers model (config.json and its weights), e.g. "
            "weights/dinov2-small; got None",
        ),
        ({"path": " "}, "model.args.path must be the folder of a transformers model"),
        ({"path": "w", "pooling": "max"}, "model.args.pooling must be one of 'cls', 'mean', 'pooler'; got 'max'"),
        (
            {"path": "w", "input_norm": "clip"},
            "model.args.input_norm must be one of 'auto', 'imagenet', 'none'; got 'clip'",
        ),
        (
            {"path": "w", "revision": "main"},
            "unknown key 'model.args.revision' in model.args; valid keys: path, pooling, input_norm",
        ),
    ],
)
def test_hf_args_errors_are_one_line(args, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"name": "hf", "args": args}})
    assert one_line(info).startswith(expected)


def test_without_transformers_installed_it_is_one_line_with_the_pip_line(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what `import transformers` meets when it is absent
    with pytest.raises(ConfigError) as info:
        build_model(hf_cfg(folders["vit"]), 3, image_size=32)
    line = one_line(info)
    assert line.startswith("model.name 'hf' needs the transformers package, which is not installed")
    assert line.endswith('(hint: pip install "reprokit[hf]")')


def test_transformers_is_imported_only_for_hf_and_loading_is_offline(folders):
    code = (
        "import sys, os\n"
        "from reprokit.core.config import config_from_dict\n"
        "from reprokit.train.models import build_model\n"
        "build_model(config_from_dict({}).model, 1, 32)\n"
        "assert 'transformers' not in sys.modules, 'simple_cnn imported transformers'\n"
        f"cfg = config_from_dict({{'model': {{'name': 'hf', 'args': {{'path': {str(folders['vit'])!r}}}}}}}).model\n"
        "build_model(cfg, 3, 32)\n"
        "import huggingface_hub.constants as c\n"
        "print('transformers' in sys.modules, os.environ.get('HF_HUB_OFFLINE'), c.HF_HUB_OFFLINE)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "1", "True"]
    assert "Loading weights" not in done.stderr  # transformers' progress bar stays out of the stage's output
