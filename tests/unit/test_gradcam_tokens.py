"""Grad-CAM on a transformer: its tokens [N, 1 + h*w, C] laid on their grid give maps of the image's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("transformers")

from reprokit.core.config import config_from_dict  # noqa: E402
from reprokit.core.errors import GradCamError  # noqa: E402
from reprokit.train.models import build_model  # noqa: E402
from reprokit.visualize.gradcam import pair_cams, resolve_layer, similarity  # noqa: E402
from tests.hf_models import save_tiny_dinov2, save_tiny_vit  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    folder = save_tiny_vit(tmp_path_factory.mktemp("vit") / "vit")
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {"name": "hf", "args": {"path": str(folder)}, "head": {"dim": 8}}}).model
    return build_model(cfg, 3, image_size=SIZE).eval()


def _pairs(seed: int = 0, n: int = 3, channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, SIZE, SIZE, generator=g), torch.rand(n, channels, SIZE, SIZE, generator=g)


def reference_cams(model: nn.Module, module: nn.Module, queries, others, prefix: int, side: int):
    """Grad-CAM written out for tokens, the slow obvious way: pair by pair, patch tokens on a side x side grid."""
    maps = []
    for q, o in zip(queries, others):
        kept = []
        handle = module.register_forward_hook(lambda _m, _i, out, kept=kept: kept.append(out))
        try:
            emb = model(torch.stack([q, o]))
        finally:
            handle.remove()
        tokens = kept[-1]
        (grads,) = torch.autograd.grad(similarity(emb[:1], emb[1:], "euclidean").sum(), tokens)
        pair = []
        for i in range(2):
            acts, g = tokens[i, prefix:], grads[i, prefix:]  # [h*w, C]
            cam = F.relu((acts * g.mean(dim=0)).sum(dim=1)).reshape(1, 1, side, side)
            cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
            pair.append((cam / cam.max()).detach() if cam.max() > 1e-12 else torch.zeros_like(cam))
        maps.append(pair)
    return torch.stack([m[0] for m in maps]), torch.stack([m[1] for m in maps])


def test_a_vit_gets_maps_of_the_image_size_at_its_last_blocks_input_norm(vit):
    layer = resolve_layer(vit, None)
    assert layer.path == "backbone.hf.layers.1.layernorm_before"
    queries, others = _pairs()
    q_maps, o_maps, sims = pair_cams(vit, layer, queries, others, "euclidean")
    assert q_maps.shape == o_maps.shape == (3, SIZE, SIZE) and sims.shape == (3,)
    assert q_maps.min() >= 0 and q_maps.max() <= 1
    assert all(m.max() == pytest.approx(1.0) for m in [*q_maps, *o_maps])  # every map found positive evidence
    ref_q, ref_o = reference_cams(vit, layer.module, queries, others, prefix=1, side=4)
    torch.testing.assert_close(torch.from_numpy(q_maps), ref_q, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(o_maps), ref_o, rtol=1e-4, atol=1e-5)


def test_the_layer_can_be_named_by_its_module_path(tmp_path):
    folder = save_tiny_dinov2(tmp_path / "dinov2")
    model = build_model(config_from_dict({"model": {"name": "hf", "args": {"path": str(folder)}}}).model, 1, SIZE)
    assert resolve_layer(model, None).path == "hf.encoder.layer.1.norm1"
    layer = resolve_layer(model, "hf.encoder.layer.0")  # a whole block's output: tokens too
    q_maps, _, _ = pair_cams(model, layer, *_pairs(channels=1), "cosine")
    assert q_maps.shape == (3, SIZE, SIZE) and q_maps.max() > 0


class TinyTokens(nn.Module):
    """A user's own transformer-like model (no token_grid): a class token and 4 x 4 patch tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.patches = nn.Conv2d(1, 8, 8, stride=8)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.block = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = self.norm(torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1))
        return self.block(tokens)[:, 0]


def test_a_token_model_without_a_grid_of_its_own_uses_the_largest_square():
    torch.manual_seed(0)
    model = TinyTokens().eval()
    layer = resolve_layer(model, "norm")
    queries, others = _pairs(channels=1)
    q_maps, o_maps, _ = pair_cams(model, layer, queries, others, "euclidean")
    ref_q, ref_o = reference_cams(model, layer.module, queries, others, prefix=1, side=4)
    torch.testing.assert_close(torch.from_numpy(q_maps), ref_q, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(o_maps), ref_o, rtol=1e-4, atol=1e-5)


def test_a_layer_with_neither_a_map_nor_tokens_is_one_line(vit):
    layer = resolve_layer(vit, "head.proj")
    with pytest.raises(GradCamError) as info:
        pair_cams(vit, layer, *_pairs(), "euclidean")
    line = info.value.one_line()
    assert line.startswith(
        "visualize.gradcam_layer 'head.proj' (Linear) outputs [6, 8]; Grad-CAM needs a layer with "
        "spatial output [N, C, H, W] or tokens [N, L, C]"
    )
    assert "\n" not in line
