"""Your embedding model. params.yaml's `model.name: models:build` calls `build(in_channels=..., **model.args)`.

Out of the box it is reprokit's small CNN. Replace the body with your own network: any
`nn.Module` that maps an image batch [N, C, H, W] (C = 1 for data.image_mode L, 3 for RGB) to
embeddings [N, D]. This file is a dependency of the train, validate and visualize stages in
dvc.yaml, so editing it re-runs them; the checkpoint records `model.name` and `model.args` to rebuild it.
"""

from collections.abc import Sequence

from torch import nn

from reprokit.train.models import simple_cnn


def build(in_channels: int, channels: Sequence[int] = (16, 32, 64), embedding_dim: int = 64) -> nn.Module:
    return simple_cnn(in_channels=in_channels, channels=channels, embedding_dim=embedding_dim)
