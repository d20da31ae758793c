"""Grad-CAM follows what the model looks at: a model that sees one quadrant gets its heat there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from reprokit.core.config import VisualizeConfig, config_from_dict
from reprokit.core.errors import ConfigError, GradCamError
from reprokit.data.images import ImageDataset
from reprokit.train.models import simple_cnn
from reprokit.visualize.gradcam import pair_cams, resolve_layer, similarity
from reprokit.visualize.gradcam_figure import draw_gradcam, draw_no_gradcam, jet
from reprokit.visualize.worst_queries import query_rows, worst_queries

SIZE = 32
HALF = SIZE // 2
QUADRANTS = {"top-left": (slice(0, HALF), slice(0, HALF)), "bottom-right": (slice(HALF, SIZE), slice(HALF, SIZE))}
# The model's hooked layer is an 8x8 map whose cells each see one 4x4 block of pixels, none
# across the quadrant's edge; the blocks outside the quadrant see only zeros and, bias-free, give
# exactly zero activation: before upsampling the map is confined to the quadrant's 4x4 cells.
# Bilinear upsampling x4 then moves at most 1/8 of an edge cell's mass across the edge on each
# axis, so *any* such map keeps at least (7/8)^2 = 0.766 inside (a map hot only in the corner
# cell); a map spread over the quadrant keeps (31/32)^2 = 0.94. A map blind to the model (uniform)
# would keep 0.25. Required: every map >= 0.76 (the bound) and their mean >= 0.9.
MIN_MASS_IN_QUADRANT = 0.76
MIN_MEAN_MASS_IN_QUADRANT = 0.9


class QuadrantNet(nn.Module):
    """Sees one quadrant only: the input is masked to it before the (bias-free) convolutions."""

    def __init__(self, quadrant: str, width: int = 8, dim: int = 16) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, SIZE, SIZE)
        rows, cols = QUADRANTS[quadrant]
        mask[..., rows, cols] = 1.0
        self.register_buffer("mask", mask)
        # 2x2 convolutions of stride 2: non-overlapping windows, none straddling the quadrant's edge.
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 2, stride=2, bias=False),
            nn.ReLU(),
            nn.Conv2d(width, width, 2, stride=2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(width * 4 * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.adaptive_avg_pool2d(self.features(x * self.mask), 4).flatten(1)
        return F.normalize(self.head(a), dim=1)


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, SIZE, SIZE, generator=g)


def _mass_in(maps: np.ndarray, quadrant: str) -> np.ndarray:
    """The share of each non-empty map's heat inside ``quadrant`` (an empty map: no positive evidence)."""
    rows, cols = QUADRANTS[quadrant]
    total = maps.sum(axis=(1, 2))
    return maps[:, rows, cols].sum(axis=(1, 2))[total > 0] / total[total > 0]


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("quadrant", sorted(QUADRANTS))
def test_heat_concentrates_in_the_quadrant_the_model_sees(quadrant, distance):
    masses = []
    for seed in range(5):  # five models, each on its own 12 pairs
        torch.manual_seed(seed)
        model = QuadrantNet(quadrant)
        layer = resolve_layer(model, None)
        assert layer.path == "features.2"  # the last Conv2d
        queries, others = _images(12, 100 + seed), _images(12, 200 + seed)
        q_maps, o_maps, sims = pair_cams(model, layer, queries, others, distance, pairs_per_batch=5)
        assert q_maps.shape == o_maps.shape == (12, SIZE, SIZE)
        assert 0.0 <= min(q_maps.min(), o_maps.min()) and max(q_maps.max(), o_maps.max()) <= 1.0
        masses += [*_mass_in(q_maps, quadrant), *_mass_in(o_maps, quadrant)]
        with torch.no_grad():
            emb = model(torch.cat([queries, others]))
        assert np.allclose(sims, similarity(emb[:12], emb[12:], distance).numpy(), atol=1e-5)
    masses = np.array(masses)
    # Random weights: some pairs have no positive evidence anywhere (an empty map); most have.
    assert len(masses) >= 0.5 * 5 * 24
    assert masses.min() >= MIN_MASS_IN_QUADRANT, masses.min()
    assert masses.mean() >= MIN_MEAN_MASS_IN_QUADRANT, masses.mean()


def test_each_pair_gets_its_own_map_and_batching_changes_nothing():
    torch.manual_seed(0)
    model = simple_cnn(1, (8, 16), 16)
    layer = resolve_layer(model, None)
    queries = _images(1, 3).repeat(4, 1, 1, 1)  # one query, four matches
    others = _images(4, 4)
    q1, o1, _ = pair_cams(model, layer, queries, others, "euclidean", pairs_per_batch=1)
    q4, o4, _ = pair_cams(model, layer, queries, others, "euclidean", pairs_per_batch=4)
    # Float rounding only (maps divided by small peaks magnify it): BatchNorm must not mix the batch.
    assert np.allclose(q1, q4, atol=1e-4) and np.allclose(o1, o4, atol=1e-4)
    # The query's map depends on the item it is compared with.
    assert not np.allclose(q4[0], q4[1], atol=1e-3)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient left behind


def test_the_layer_is_a_module_path_or_the_last_conv():
    model = simple_cnn(1, (8, 16, 32), 16)
    assert resolve_layer(model, None).path == "features.8"
    chosen = resolve_layer(model, "features.4")
    assert chosen.module is model.features[4]
    q, o, _ = pair_cams(model, resolve_layer(model, "features.6"), _images(2, 5), _images(2, 6), "cosine")
    assert q.shape == (2, SIZE, SIZE) and np.isfinite(q).all()


def test_a_missing_layer_is_one_line_naming_it_and_the_convolutions():
    model = simple_cnn(1, (8, 16), 16)
    with pytest.raises(GradCamError) as err:
        resolve_layer(model, "features.99")
    line = err.value.one_line()
    assert "'features.99'" in line and "features.0, features.4" in line and "\n" not in line


def test_a_model_without_convolution_is_one_line():
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 8))
    with pytest.raises(GradCamError, match=r"no nn\.Conv2d layer; its modules: 0, 1"):
        resolve_layer(model, None)


def test_a_layer_without_spatial_output_is_one_line():
    model = simple_cnn(1, (8,), 16)
    with pytest.raises(GradCamError, match=r"'head' \(Linear\) outputs \[4, 16\]; Grad-CAM needs .* features\.0"):
        pair_cams(model, resolve_layer(model, "head"), _images(2, 7), _images(2, 8), "euclidean")


def test_a_frozen_backbone_still_gets_maps():
    model = simple_cnn(1, (8, 16), 16)
    for p in model.parameters():
        p.requires_grad_(False)
    q, o, _ = pair_cams(model, resolve_layer(model, None), _images(2, 9), _images(2, 10), "euclidean")
    assert q.max() > 0 and o.max() > 0


def test_gradcam_layer_param_is_checked():
    assert config_from_dict({"visualize": {"gradcam_layer": "features.6"}}).visualize.gradcam_layer == "features.6"
    assert config_from_dict({}).visualize.gradcam_layer is None
    with pytest.raises(
        ConfigError, match=r"visualize.gradcam_layer must be null or a module path .*got 'features\.\.6'"
    ):
        config_from_dict({"visualize": {"gradcam_layer": "features..6"}})


def test_jet_runs_from_blue_to_red():
    cold, hot = jet(np.array([0.0, 1.0]))
    assert cold[2] > 100 and cold[0] == 0 and hot[0] > 100 and hot[2] == 0


def _split(tmp_path, n_labels: int = 4, views: int = 3):
    rng = np.random.default_rng(0)
    rows, paths = [], []
    for label in range(n_labels):
        for v in range(views):
            path = tmp_path / f"{label}_{v}.png"
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8)).save(path)
            rows.append(
                {"label": label, "path": path.name, "split": "validation", "is_query": True, "is_gallery": True}
            )
            paths.append(path)
    return pd.DataFrame(rows), paths


def _per_query(val_df: pd.DataFrame, top_k: int) -> pd.DataFrame:
    n = len(val_df)
    out = []
    for i in range(n):
        retrieved = [(i + j) % n for j in range(1, top_k + 1)]
        out.append(
            {
                "item": i,
                "path": val_df["path"][i],
                "label": int(val_df["label"][i]),
                "map@5": (i * 7 % n) / n,
                "retrieved": retrieved,
                "distances": [0.1 * j for j in range(top_k)],
            }
        )
    return pd.DataFrame(out)


def test_the_figure_shows_the_worst_queries_rows(tmp_path):
    val_df, paths = _split(tmp_path)
    cfg = VisualizeConfig(n_queries=3, top_k=4, n_ground_truth=1)
    pq = _per_query(val_df, cfg.top_k)
    model = simple_cnn(1, (8, 16), 16)
    images = ImageDataset.from_frame(val_df, paths, SIZE, "L")
    out = tmp_path / "gradcam.png"
    n = draw_gradcam(pq, val_df, images, model, resolve_layer(model, None), cfg, "euclidean", out)
    assert n == 3 == len(worst_queries(pq, cfg.metric, cfg.n_queries))
    rows = query_rows(pq, val_df, cfg)
    assert [c.kind for c in rows[0]] == ["query"] + ["retrieved"] * 4 + ["truth"]
    with Image.open(out) as img:
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"))
    assert height > 2 * 3 * 78 and width > 6 * 72  # two rows of 78 px tiles per query, 1 + 4 + 1 columns
    # The heat shows: strongly red pixels exist (the plain images are grey).
    red = (pixels[..., 0] > 180) & (pixels[..., 2] < 90) & (pixels[..., 1] < 140)
    assert red.sum() > 50
    first = out.read_bytes()
    draw_gradcam(pq, val_df, images, model, resolve_layer(model, None), cfg, "euclidean", out)
    assert out.read_bytes() == first  # deterministic


def test_no_gradcam_figure_says_why(tmp_path):
    out = tmp_path / "gradcam.png"
    draw_no_gradcam("visualize.gradcam_layer 'x': no such module", out)
    with Image.open(out) as img:
        assert img.size[0] == 640 and np.asarray(img.convert("L")).min() < 128  # some text drawn
