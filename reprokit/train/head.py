"""``model.head`` and ``model.freeze_batchnorm``: what reprokit puts around any backbone.

``head: {dim, normalize}`` wraps the backbone as ``EmbeddingNet(backbone, head)``: the head is a
``Linear(D, dim)`` (``dim: null``: none) then, with ``normalize`` (the default), L2 normalisation.
Its state-dict keys are then ``backbone.<the backbone's own>`` and ``head.proj.weight/bias``;
without a head the network is the backbone itself, keys and checkpoints as before.

``freeze_batchnorm`` (the "Metric Learning Reality Check" protocol) keeps every BatchNorm layer in
evaluation mode, running statistics and affine parameters frozen (``requires_grad`` False). Each
layer's class becomes a frozen subclass whose ``train()`` always means ``eval()``: Lightning's
``model.train()`` at each epoch cannot wake it, and its state-dict keys stay the same.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

__all__ = ["ProjectionHead", "EmbeddingNet", "freeze_batchnorm", "FROZEN_BATCHNORM"]


class ProjectionHead(nn.Module):
    """[N, D] -> [N, dim] (a linear map, or none), L2-normalised when ``normalize``."""

    def __init__(self, in_dim: int, dim: int | None, normalize: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim) if dim is not None else None
        self.normalize = normalize

    def forward(self, x):
        if self.proj is not None:
            x = self.proj(x)
        return F.normalize(x, dim=1) if self.normalize else x


class EmbeddingNet(nn.Module):
    """A backbone with a head on top."""

    def __init__(self, backbone: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images):
        return self.head(self.backbone(images))


class _Frozen:
    """Mixed into a BatchNorm class: ``train(mode)`` leaves the layer in evaluation mode."""

    def train(self, mode: bool = True):
        return super().train(False)  # type: ignore[misc]


class FrozenBatchNorm1d(_Frozen, nn.BatchNorm1d):
    pass


class FrozenBatchNorm2d(_Frozen, nn.BatchNorm2d):
    pass


class FrozenBatchNorm3d(_Frozen, nn.BatchNorm3d):
    pass


class FrozenSyncBatchNorm(_Frozen, nn.SyncBatchNorm):
    pass


# Named classes for torch's own (a model holding them can be pickled, e.g. by a spawned DDP worker).
FROZEN_BATCHNORM: dict[type, type] = {
    nn.BatchNorm1d: FrozenBatchNorm1d,
    nn.BatchNorm2d: FrozenBatchNorm2d,
    nn.BatchNorm3d: FrozenBatchNorm3d,
    nn.SyncBatchNorm: FrozenSyncBatchNorm,
}
_BATCHNORM = tuple(FROZEN_BATCHNORM)


def _frozen_class(cls: type) -> type:
    if cls not in FROZEN_BATCHNORM:  # a subclass of the user's: a frozen subclass of it, made once
        FROZEN_BATCHNORM[cls] = type(f"Frozen{cls.__name__}", (_Frozen, cls), {"__module__": __name__})
    return FROZEN_BATCHNORM[cls]


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm layer of ``model`` in place; return how many there are."""
    count = 0
    for module in model.modules():
        if isinstance(module, _BATCHNORM):
            if not isinstance(module, _Frozen):
                module.__class__ = _frozen_class(type(module))
            module.eval()
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
            count += 1
    return count
